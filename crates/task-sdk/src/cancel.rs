//! Pipeline cancellation. The agent signals a task's process on cancel (SIGINT, then
//! SIGTERM; Ctrl-C elsewhere). [`CancelSignal`] is that event as a value many waits can
//! share: its handlers are installed once, before work starts, so a signal that arrives
//! between two waits is not lost.
//!
//! Only tasks that have something to cancel install it: once installed, the handlers replace
//! the default action, so a task that never looks at the signal would no longer stop.

use std::future::Future;

use tokio::sync::watch;

/// Resolves [`CancelSignal::cancelled`] once the pipeline is cancelled.
#[derive(Debug, Clone)]
pub struct CancelSignal {
    rx: watch::Receiver<bool>,
    // Keeps the channel open for `never()`.
    _tx: Option<std::sync::Arc<watch::Sender<bool>>>,
}

impl CancelSignal {
    /// Installs the handlers for the agent's cancel signals on the current runtime.
    pub async fn install() -> CancelSignal {
        CancelSignal::spawn(cancellation()).await
    }

    /// Spawns `signal` on the current runtime and polls it once right away, so that its
    /// handlers are in place before any work starts.
    pub async fn spawn(signal: impl Future<Output = ()> + Send + 'static) -> CancelSignal {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            signal.await;
            let _ = tx.send(true);
        });
        // Let the spawned task run up to its first await (which installs the handlers).
        tokio::task::yield_now().await;
        CancelSignal { rx, _tx: None }
    }

    /// A signal that never fires (tests, and callers without cancellation).
    pub fn never() -> CancelSignal {
        let (tx, rx) = watch::channel(false);
        CancelSignal {
            rx,
            _tx: Some(std::sync::Arc::new(tx)),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when cancelled; never otherwise.
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        if rx.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves when the agent cancels the job: it sends SIGINT, then SIGTERM (Ctrl-C elsewhere).
async fn cancellation() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fires_once_the_signal_resolves() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let signal = CancelSignal::spawn(async move {
            let _ = rx.await;
        })
        .await;
        assert!(!signal.is_cancelled());
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), signal.cancelled())
            .await
            .unwrap();
        assert!(signal.is_cancelled());
        // Still resolved for a later waiter.
        signal.cancelled().await;
        let never = CancelSignal::never();
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), never.cancelled())
                .await
                .is_err()
        );
    }
}
