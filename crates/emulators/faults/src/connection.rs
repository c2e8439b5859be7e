//! One HTTP/1 connection served by hyper, which a handler can close without answering.

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Notify;

/// Closes the connection a request arrived on, without an answer. Every request served by
/// [`serve_connection`] carries one in its extensions.
#[derive(Clone, Debug)]
pub struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    /// The kill switch of the connection `request` came on, if it came through
    /// [`serve_connection`].
    pub fn of(request: &Request) -> Option<ConnectionKill> {
        request.extensions().get::<ConnectionKill>().cloned()
    }

    /// Closes the connection; the future never completes (the handler's task is dropped with
    /// the connection).
    pub async fn close(self) -> std::convert::Infallible {
        self.0.notify_one();
        std::future::pending().await
    }
}

/// Serves `io` with `router` until the client leaves, a handler closes it through its
/// [`ConnectionKill`], or `stop` resolves.
pub async fn serve_connection<I>(io: I, router: axum::Router, stop: impl Future<Output = ()>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let for_requests = kill.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectionKill(for_requests.clone()));
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = stop => {}
    }
}
