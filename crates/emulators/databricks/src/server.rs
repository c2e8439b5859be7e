//! The accept loop: one hyper HTTP/1 connection per socket, killable from a handler.
//!
//! `axum::serve` cannot close a connection without answering; fault injection
//! needs that, so each connection carries a [`ConnectionKill`] the gate can fire.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::Shared;

/// Closes the connection a request arrived on, without an answer.
#[derive(Clone, Debug)]
pub struct ConnectionKill(Arc<Notify>);

impl ConnectionKill {
    pub fn fire(&self) {
        self.0.notify_one();
    }
}

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = crate::api::router(shared);
    let for_connections = shutdown.clone();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, router.clone(), for_connections.clone()));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
}

async fn connection(stream: TcpStream, router: axum::Router, mut shutdown: watch::Receiver<bool>) {
    let kill = Arc::new(Notify::new());
    let kill_for_requests = kill.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request
            .extensions_mut()
            .insert(ConnectionKill(kill_for_requests.clone()));
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, request).await }
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = crate::stopped(&mut shutdown) => {}
    }
}
