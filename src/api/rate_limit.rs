//! The optional per-client rate limit: a token bucket per client IP address
//! (`actix-governor`), answered with 429, `Retry-After` and Rekor's JSON body.
//!
//! The client is the peer, unless the peer is one of `trusted_proxies`: then
//! it is the right-most `X-Forwarded-For` address that is not a trusted proxy
//! itself (each proxy appends the address it saw, so addresses left of the
//! first untrusted one may be forged). An untrusted peer's header is ignored.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

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

/// Keys requests by the client's address (IPv6 by /56 prefix).
#[derive(Clone, Debug, Default)]
pub struct ClientIp {
    trusted_proxies: Arc<[IpNet]>,
}

impl ClientIp {
    /// The client behind `peer`, given the request's `X-Forwarded-For` values.
    fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded.rev().flat_map(|value| value.rsplit(','));
        for hop in hops {
            // A hop that is not an address ends what can be believed.
            let Some(ip) = parse_hop(hop.trim()) else {
                break;
            };
            client = ip;
            if !trusted(&ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` element: an address, optionally with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    // `::ffff:10.0.0.1` is 10.0.0.1, so that IPv4 CIDRs match it.
    Some(ip.to_canonical())
}

impl KeyExtractor for ClientIp {
    type Key = IpAddr;
    type KeyExtractionError = actix_governor::SimpleKeyExtractionError<&'static str>;

    fn extract(&self, req: &ServiceRequest) -> Result<IpAddr, Self::KeyExtractionError> {
        let peer = req.peer_addr().map(|addr| addr.ip()).ok_or_else(|| {
            actix_governor::SimpleKeyExtractionError::new("couldn't read the client address")
        })?;
        // A value that is not text reads as empty, which ends the walk there.
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .map(|v| v.to_str().unwrap_or(""))
            .collect();
        let ip = self.client(peer.to_canonical(), forwarded.into_iter());
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
pub fn build(config: &RateLimitConfig) -> Option<RateLimit> {
    if config.per_second == 0 {
        return None;
    }
    GovernorConfigBuilder::default()
        .requests_per_second(config.per_second)
        .burst_size(config.burst.max(1))
        .key_extractor(ClientIp {
            trusted_proxies: config.trusted_proxies.clone().into(),
        })
        .finish()
}

/// The middleware: the limiter when configured, a pass-through otherwise.
#[must_use]
pub fn middleware(
    limit: Option<&RateLimit>,
) -> Condition<Governor<ClientIp, NoOpMiddleware<QuantaInstant>>> {
    let disabled = || {
        GovernorConfigBuilder::default()
            .key_extractor(ClientIp::default())
            .finish()
            .expect("default limiter config is valid")
    };
    match limit {
        Some(limit) => Condition::new(true, Governor::new(limit)),
        None => Condition::new(false, Governor::new(&disabled())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn behind(proxies: &[&str]) -> ClientIp {
        ClientIp {
            trusted_proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_forwarded_address() {
        let key = behind(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        // Forged entries left of the real client are not believed.
        let header = ["6.6.6.6, 1.2.3.4, 10.0.0.7"];
        assert_eq!(key.client(peer, header.into_iter()), ip("1.2.3.4"));
        // Several headers read as one list, in order.
        let headers = ["6.6.6.6", "1.2.3.4", "10.0.0.7"];
        assert_eq!(key.client(peer, headers.into_iter()), ip("1.2.3.4"));
        assert_eq!(
            key.client(peer, ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(key.client(peer, ["5.6.7.8:80"].into_iter()), ip("5.6.7.8"));
    }

    #[test]
    fn an_untrusted_peer_or_a_broken_header_is_not_believed() {
        let key = behind(&["10.0.0.0/8"]);
        assert_eq!(
            key.client(ip("192.0.2.1"), ["1.2.3.4"].into_iter()),
            ip("192.0.2.1")
        );
        assert_eq!(
            ClientIp::default().client(ip("10.0.0.1"), ["1.2.3.4"].into_iter()),
            ip("10.0.0.1")
        );
        // No header, or garbage: the last trusted hop is the client.
        assert_eq!(
            key.client(ip("10.0.0.1"), ["1.2.3.4", "", "10.0.0.9"].into_iter()),
            ip("10.0.0.9")
        );
        assert_eq!(
            key.client(
                ip("10.0.0.1"),
                ["::ffff:1.2.3.4, ::ffff:10.0.0.2"].into_iter()
            ),
            ip("1.2.3.4")
        );
        assert_eq!(key.client(ip("10.0.0.1"), [].into_iter()), ip("10.0.0.1"));
        assert_eq!(
            key.client(ip("10.0.0.1"), ["1.2.3.4, junk, 10.0.0.9"].into_iter()),
            ip("10.0.0.9")
        );
        // Only proxies in the header: the left-most one is as far as it goes.
        assert_eq!(
            key.client(ip("10.0.0.1"), ["10.0.0.3, 10.0.0.2"].into_iter()),
            ip("10.0.0.3")
        );
    }
}
