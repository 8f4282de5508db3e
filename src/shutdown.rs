//! The shutdown signal shared by the API and the worker, and the two ways
//! a loop waits on it: [`Shutdown::every`] and [`Shutdown::sleep`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// A one-way switch: once triggered, every clone sees it.
#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self {
            sender: Arc::new(sender),
            receiver,
        }
    }

    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once the switch is triggered.
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // Err means every sender is gone, which cannot happen while `self` lives.
        let _ = receiver.wait_for(|triggered| *triggered).await;
    }

    /// Waits `duration`, or less if the switch is triggered meanwhile:
    /// `true` when the wait ran out, `false` when it is time to stop.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.wait() => false,
        }
    }

    /// Runs `tick` every `period`, the first time at once, until the switch
    /// is triggered. A tick that overruns delays the next rather than
    /// bunching them up; a tick under way is finished, not cut short.
    pub async fn every<F, Fut>(&self, period: Duration, mut tick: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.wait() => return,
            }
            tick().await;
        }
    }

    /// Triggers on Ctrl+C or SIGTERM (what Kubernetes sends).
    pub async fn trigger_on_signal(self) {
        let ctrl_c = async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => tracing::info!("received Ctrl+C, shutting down"),
            () = terminate => tracing::info!("received SIGTERM, shutting down"),
            () = self.wait() => return,
        }
        self.trigger();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        let waiter = tokio::spawn(async move { clone.wait().await });
        shutdown.trigger();
        assert!(waiter.await.is_ok());
        assert!(shutdown.is_triggered());
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticks_until_triggered() {
        let shutdown = Shutdown::new();
        let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let runner = {
            let (shutdown, ticks) = (shutdown.clone(), ticks.clone());
            tokio::spawn(async move {
                shutdown
                    .every(Duration::from_secs(1), || {
                        ticks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        async {}
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(2500)).await;
        shutdown.trigger();
        assert!(runner.await.is_ok());
        assert_eq!(ticks.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_runs_out_or_stops_at_the_trigger() {
        let shutdown = Shutdown::new();
        assert!(shutdown.sleep(Duration::from_secs(1)).await);
        let sleeper = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move { shutdown.sleep(Duration::from_secs(3600)).await })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.trigger();
        assert!(matches!(sleeper.await, Ok(false)));
    }
}
