//! The optional per-client rate limit: a token bucket per client IP address
//! (`actix-governor`), answered with 429, `Retry-After` and Rekor's JSON body.

use std::net::IpAddr;

use actix_governor::governor::clock::{Clock, DefaultClock, QuantaInstant};
use actix_governor::governor::middleware::NoOpMiddleware;
use actix_governor::governor::NotUntil;
use actix_governor::{Governor, GovernorConfig, GovernorConfigBuilder, KeyExtractor};
use actix_web::dev::ServiceRequest;
use actix_web::http::header;
use actix_web::middleware::Condition;
use actix_web::{HttpResponse, HttpResponseBuilder};

use crate::config::RateLimitConfig;

/// A configured limiter, built once and shared by every worker.
pub type RateLimit = GovernorConfig<ClientIp, NoOpMiddleware<QuantaInstant>>;

/// Keys requests by the peer's address (IPv6 by /56 prefix).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp;

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = actix_governor::SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        let ip = req.peer_addr().map(|addr| addr.ip()).ok_or_else(|| {
            actix_governor::SimpleKeyExtractionError::new("couldn't read the client address")
        })?;
        Ok(match ip {
            IpAddr::V6(v6) => {
                let mut octets = v6.octets();
                octets[7..].fill(0);
                IpAddr::V6(octets.into())
            }
            v4 @ IpAddr::V4(_) => v4,
        })
    }

    fn exceed_rate_limit_response(
        &self,
        negative: &NotUntil<QuantaInstant>,
        mut response: HttpResponseBuilder,
    ) -> HttpResponse {
        let wait = negative
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            + 1;
        let body =
            format!("{{\"code\":429,\"message\":\"rate limit exceeded; retry in {wait}s\"}}\n");
        response
            .insert_header((header::RETRY_AFTER, wait.to_string()))
            .content_type("application/json")
            .body(body)
    }
}

/// Builds the limiter, or `None` when `per_second` is 0.
#[must_use]
pub fn build(config: RateLimitConfig) -> Option<RateLimit> {
    if config.per_second == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .requests_per_second(config.per_second)
        .burst_size(config.burst.max(1))
        .key_extractor(ClientIp)
        .finish()
}

/// The middleware: the limiter when configured, a pass-through otherwise.
#[must_use]
pub fn middleware(
    limit: Option<&RateLimit>,
) -> Condition<Governor<ClientIp, NoOpMiddleware<QuantaInstant>>> {
    let disabled = || {
        GovernorConfigBuilder::default()
            .key_extractor(ClientIp)
            .finish()
            .expect("default limiter config is valid")
    };
    match limit {
        Some(limit) => Condition::new(true, Governor::new(limit)),
        None => Condition::new(false, Governor::new(&disabled())),
    }
}
