//! Whether the service is draining. A stop signal flips it once; `/readyz` reads it so load
//! balancers stop routing here while in-flight requests finish, and the server waits on it to
//! start its shutdown deadline.

use std::sync::Arc;

use tokio::sync::watch;

/// A one-way switch from "serving" to "shutting down", shared by the server and handlers.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Shutdown {
    /// Starts the shutdown. Calling it again changes nothing.
    pub fn begin(&self) {
        self.0.send_replace(true);
    }

    pub fn has_begun(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`begin`](Self::begin) has been called (at once if it already was).
    pub async fn begun(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|begun| *begun).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn begun_resolves_for_waiters_before_and_after_the_switch() {
        let shutdown = Shutdown::default();
        assert!(!shutdown.has_begun());
        let waiter = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { shutdown.begun().await }
        });
        shutdown.begin();
        waiter.await.unwrap();
        assert!(shutdown.has_begun());
        shutdown.begun().await;
    }
}
