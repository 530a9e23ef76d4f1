//! Bodies answered before they were read, and what draining them may cost.
//!
//! A request refused on its head (413 by `Content-Length`, 503 from a full
//! validation lane, 401, 415, 429, 405, 404) leaves its body on the wire.
//! actix then lingers (`unread_body_linger_ms`): it reads and throws away
//! the rest, so that a client that writes its whole body before reading
//! sees the answer instead of a reset. Each byte drained is a copy, and a
//! client on a fast link can make the server drain 32 MiB bodies as fast as
//! it can refuse them: under such a flood the drain, not the refusals, takes
//! the cores from honest requests.
//!
//! So draining has a budget, `unread_body_drain_bytes_per_second`, shared by
//! all connections. A body whose unread rest fits is drained as before. One
//! that does not has its connection's read side shut down at once: the
//! answer is still written, the server reads no more, and the connection
//! closes as soon as the answer is out (the client sees its answer, then a
//! reset of what it was still sending). A client that waits for
//! `100 Continue`, or reads while it writes, loses nothing either way.
//!
//! To shut down the read side, each connection keeps a duplicate of its
//! socket's descriptor (one `dup` per connection, and twice the descriptors:
//! size `ulimit -n` for twice the connections you expect).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpMessage as _, HttpRequest};
use futures_util::Stream;

use super::byte_budget::ByteBudget;

/// The connection's socket, kept to shut its read side down.
#[derive(Clone)]
pub struct ConnSocket(Arc<std::net::TcpStream>);

/// `HttpServer::on_connect`: keeps a duplicate of a plain TCP connection's
/// descriptor in the connection's data. Without one (another platform, or
/// `dup` failed), refused bodies are always drained.
pub fn on_connect(io: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    #[cfg(unix)]
    if let Some(stream) = io.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd as _;
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            data.insert(ConnSocket(Arc::new(std::net::TcpStream::from(fd))));
        }
    }
    #[cfg(not(unix))]
    let _ = (io, data);
}

/// The shared budget for draining unread bodies; `None` drains all.
pub struct DrainBudget(Option<ByteBudget>);

impl DrainBudget {
    /// A budget of `bytes_per_second`; 0 drains every body.
    #[must_use]
    pub fn new(bytes_per_second: u64) -> Self {
        Self((bytes_per_second > 0).then(|| ByteBudget::new(bytes_per_second)))
    }

    /// Whether `bytes` more may be drained now; if so, they are charged.
    fn admit(&self, bytes: usize) -> bool {
        self.0.as_ref().is_none_or(|budget| budget.admit(bytes))
    }
}

/// How much of one request's body has been read, watched from the outermost
/// middleware.
pub struct Watch {
    progress: Arc<Progress>,
    socket: ConnSocket,
    declared: Option<usize>,
}

#[derive(Default)]
struct Progress {
    read: AtomicUsize,
    finished: AtomicBool,
}

impl Watch {
    /// Starts watching `req`'s body, if it has one and its connection's
    /// socket is known: its payload is wrapped to count what is read.
    pub fn start(req: &mut ServiceRequest) -> Option<Self> {
        let declared = super::declared_length(req.request());
        let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
        if declared.unwrap_or(0) == 0 && !chunked {
            return None;
        }
        let socket = req.conn_data::<ConnSocket>()?.clone();
        let progress = Arc::new(Progress::default());
        let counted = Counted {
            inner: req.take_payload(),
            progress: progress.clone(),
        };
        let boxed: Pin<Box<dyn Stream<Item = _>>> = Box::pin(counted);
        req.set_payload(Payload::from(boxed));
        Some(Self {
            progress,
            socket,
            declared,
        })
    }

    /// Called once the request is answered: if its body was not read to the
    /// end and draining the rest would exceed `budget`, the connection
    /// reads no more. Returns whether it was cut.
    pub fn answered(self, req: &HttpRequest, budget: &DrainBudget, max_body: usize) -> bool {
        if self.progress.finished.load(Ordering::Acquire) {
            return false;
        }
        let read = self.progress.read.load(Ordering::Acquire);
        // Undeclared (chunked): it may run to the limit, and past it actix
        // stops reading anyway.
        let rest = self.declared.unwrap_or(max_body).saturating_sub(read);
        if budget.admit(rest) {
            return false;
        }
        tracing::debug!(
            peer = ?req.peer_addr(),
            rest,
            "unread body over the drain budget: closing the connection's read side"
        );
        self.socket.0.shutdown(std::net::Shutdown::Read).is_ok()
    }
}

/// A payload that counts the bytes read through it and notes its end.
struct Counted {
    inner: Payload,
    progress: Arc<Progress>,
}

impl Stream for Counted {
    type Item = Result<Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut self.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                self.progress.read.fetch_add(chunk.len(), Ordering::AcqRel);
            }
            Poll::Ready(None) => self.progress.finished.store(true, Ordering::Release),
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_budget_drains_everything() {
        let budget = DrainBudget::new(0);
        assert!(budget.admit(usize::MAX));
        assert!(budget.admit(usize::MAX));
    }

    #[test]
    fn a_budget_drains_up_to_its_rate_then_refuses() {
        let budget = DrainBudget::new(1 << 20);
        assert!(budget.admit(32 << 20), "the first body goes on credit");
        assert!(!budget.admit(1), "then the budget is spent");
    }
}
