//! The accept loop: one connection per socket, served by [`emulator_faults::serve_connection`]
//! so that fault injection can close a connection without answering (`axum::serve` cannot).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Shared;

pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = crate::api::router(shared);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let mut stop = shutdown.clone();
                    let stopped = async move { crate::stopped(&mut stop).await };
                    tokio::spawn(emulator_faults::serve_connection(stream, router.clone(), stopped));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
}
