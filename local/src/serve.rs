//! A local HTTP server in a background task with a graceful stop: what the emulators share.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running axum server; dropping it asks it to stop, [`Server::stop`] also waits.
pub struct Server {
    pub addr: SocketAddr,
    /// Names the server in logs (`emulator`, `spotify emulator`).
    name: &'static str,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Serves `app` on `listener` (bound by the caller, who may need its address first) in a
    /// background task.
    pub fn spawn(
        name: &'static str,
        listener: tokio::net::TcpListener,
        app: axum::Router,
    ) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!(%addr, "{name} listening");
        Ok(Server {
            addr,
            name,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://<addr>`, e.g. `http://127.0.0.1:41234`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Graceful shutdown: stops accepting, lets in-flight requests finish (at most 5 s).
    pub async fn stop(mut self) {
        let name = self.name;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "{name} server error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "{name} task failed"),
                Err(_) => {
                    tracing::warn!("{name} did not shut down within 5 s, aborting");
                    task.abort();
                }
            }
        }
        tracing::info!(addr = %self.addr, "{name} stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: ask the server to stop if `stop` was not called.
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
