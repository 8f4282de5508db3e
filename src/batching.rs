//! Group commit: callers that arrive while a write is in progress share the
//! next one. One statement (one transaction, one WAL flush, one round trip)
//! then serves many callers, and each caller still gets its own answer only
//! after the write that carries its item has finished.
//!
//! Nothing waits on a timer: a caller arriving when no write is running
//! starts one at once, so a lone caller pays no extra latency; batches form
//! only under load, from the callers that queued up meanwhile. A second
//! write (up to `max_flushes`) starts only for a full batch: concurrent
//! writes of partial batches would split the group into many small ones,
//! each paying a round trip and a commit for a few items (docs/decisions.md,
//! group commit).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

type Flush<I, O> = dyn Fn(Vec<I>) -> Pin<Box<dyn Future<Output = Vec<O>> + Send>> + Send + Sync;

/// A queue of items written together; cheap to clone.
pub struct Batcher<I, O> {
    shared: Arc<Shared<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<I, O> {
    state: Mutex<State<I, O>>,
    flush: Box<Flush<I, O>>,
    max_batch: usize,
    max_flushes: usize,
}

struct State<I, O> {
    waiting: Vec<(I, oneshot::Sender<O>)>,
    flushing: usize,
}

/// The write carrying an item ended without an answer for it (it panicked).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the batched write carrying this item was lost")]
pub struct BatchLost;

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// `flush` writes one batch (at most `max_batch` items) and returns one
    /// answer per item, in order; at most `max_flushes` run at once, all
    /// but one of them carrying a full batch.
    pub fn new<F, Fut>(max_batch: usize, max_flushes: usize, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<O>> + Send + 'static,
    {
        let flush: Box<Flush<I, O>> = Box::new(move |items| Box::pin(flush(items)));
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    waiting: Vec::new(),
                    flushing: 0,
                }),
                flush,
                max_batch: max_batch.max(1),
                max_flushes: max_flushes.max(1),
            }),
        }
    }

    /// Queues `item` and waits for the write that carries it.
    ///
    /// The write runs in a task of its own, so a caller that stops waiting
    /// (a client that hung up) cancels neither its item nor anyone else's.
    pub async fn submit(&self, item: I) -> Result<O, BatchLost> {
        let (answer, answered) = oneshot::channel();
        self.queue(|waiting| waiting.push((item, answer)));
        answered.await.map_err(|_| BatchLost)
    }

    /// Queues every item at once (so they stay together in a write when
    /// they fit) and waits for the writes that carry them; answers in order.
    pub async fn submit_all(&self, items: Vec<I>) -> Vec<Result<O, BatchLost>> {
        let mut answered = Vec::with_capacity(items.len());
        self.queue(|waiting| {
            for item in items {
                let (answer, receiver) = oneshot::channel();
                waiting.push((item, answer));
                answered.push(receiver);
            }
        });
        let mut answers = Vec::with_capacity(answered.len());
        for receiver in answered {
            answers.push(receiver.await.map_err(|_| BatchLost));
        }
        answers
    }

    /// Adds items to the queue under its lock, then starts a flush when
    /// something waits and none runs, or a full batch waits and a flush
    /// slot is free.
    fn queue(&self, add: impl FnOnce(&mut Vec<(I, oneshot::Sender<O>)>)) {
        let start_flush = self.shared.with(|state| {
            add(&mut state.waiting);
            let start = match state.flushing {
                0 => !state.waiting.is_empty(),
                running => {
                    running < self.shared.max_flushes
                        && state.waiting.len() >= self.shared.max_batch
                }
            };
            if start {
                state.flushing += 1;
            }
            start
        });
        if start_flush {
            tokio::spawn(flush_until_empty(self.shared.clone()));
        }
    }
}

impl<I, T, E> Batcher<I, Result<T, E>>
where
    I: Send + 'static,
    T: Send + 'static,
    E: From<BatchLost> + Send + 'static,
{
    /// [`Batcher::submit`] for writes that answer a `Result`: a lost write
    /// is one more error of the caller's kind.
    pub async fn write(&self, item: I) -> Result<T, E> {
        self.submit(item)
            .await
            .unwrap_or_else(|lost| Err(lost.into()))
    }
}

impl<I, O> Shared<I, O> {
    fn with<T>(&self, f: impl FnOnce(&mut State<I, O>) -> T) -> T {
        // A poisoned lock only means a panic elsewhere; the queue is still valid.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }
}

/// Writes batches until nothing waits, then gives its flush slot back.
async fn flush_until_empty<I: Send + 'static, O: Send + 'static>(shared: Arc<Shared<I, O>>) {
    let mut slot = FlushSlot {
        shared: shared.clone(),
        held: true,
    };
    loop {
        let batch = shared.with(|state| {
            // With other flushes running, only a full batch is worth another
            // write; the last flush running takes what is left.
            let partial = state.waiting.len() < shared.max_batch;
            if state.waiting.is_empty() || (partial && state.flushing > 1) {
                // Released under the lock: a caller queueing right after
                // sees the free slot and starts a flush of its own.
                state.flushing -= 1;
                slot.held = false;
                return None;
            }
            let take = state.waiting.len().min(shared.max_batch);
            Some(state.waiting.drain(..take).collect::<Vec<_>>())
        });
        let Some(batch) = batch else { return };
        let (items, answers): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
        let results = (shared.flush)(items).await;
        for (answer, result) in answers.into_iter().zip(results) {
            // The caller may have stopped waiting; its item is written anyway.
            let _ = answer.send(result);
        }
    }
}

/// Gives the flush slot back if a flush panics, so later callers still
/// get a flush; the panicked batch's callers see [`BatchLost`].
struct FlushSlot<I: Send + 'static, O: Send + 'static> {
    shared: Arc<Shared<I, O>>,
    held: bool,
}

impl<I: Send + 'static, O: Send + 'static> Drop for FlushSlot<I, O> {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let restart = self.shared.with(|state| {
            if state.waiting.is_empty() {
                state.flushing -= 1;
                false
            } else {
                true
            }
        });
        if restart && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(flush_until_empty(self.shared.clone()));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    type Sizes = Arc<Mutex<Vec<usize>>>;

    /// A batcher whose writes echo their items and record their sizes, each
    /// held open until `gate` gives it a permit.
    fn gated(max_batch: usize, max_flushes: usize) -> (Batcher<u32, u32>, Arc<Semaphore>, Sizes) {
        let gate = Arc::new(Semaphore::new(0));
        let sizes = Sizes::default();
        let batcher = {
            let (gate, sizes) = (gate.clone(), sizes.clone());
            Batcher::new(max_batch, max_flushes, move |items: Vec<u32>| {
                let (gate, sizes) = (gate.clone(), sizes.clone());
                async move {
                    sizes.lock().unwrap().push(items.len());
                    if let Ok(permit) = gate.acquire().await {
                        permit.forget();
                    }
                    items
                }
            })
        };
        (batcher, gate, sizes)
    }

    #[tokio::test]
    async fn a_lone_item_is_written_at_once_and_answered() {
        let batcher = Batcher::new(8, 1, |items: Vec<u32>| async move {
            items.into_iter().map(|i| i * 10).collect()
        });
        assert_eq!(batcher.submit(4).await.ok(), Some(40));
    }

    #[tokio::test]
    async fn callers_arriving_during_a_write_share_the_next_one() {
        // The first write is held open until every other caller has queued.
        let (batcher, gate, sizes) = gated(100, 1);
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.submit(0).await }
        });
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (1..=20)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(i).await })
            })
            .collect();
        while batcher.shared.with(|s| s.waiting.len()) < 20 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(2);
        assert_eq!(first.await.unwrap().ok(), Some(0));
        for (i, handle) in rest.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap().ok(), Some(i as u32 + 1));
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 20]);
    }

    #[tokio::test]
    async fn a_second_write_starts_only_for_a_full_batch() {
        let (batcher, gate, sizes) = gated(4, 2);
        let submit = |i: u32| {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.submit(i).await })
        };
        let written = |count: usize| {
            let sizes = sizes.clone();
            async move {
                while sizes.lock().unwrap().len() < count {
                    tokio::task::yield_now().await;
                }
            }
        };
        let mut handles = vec![submit(0)];
        written(1).await;
        // Three waiting (a partial batch) with a write running: no second one.
        handles.extend((1..=3).map(submit));
        while batcher.shared.with(|s| s.waiting.len()) < 3 {
            tokio::task::yield_now().await;
        }
        // (Whether to start a write is decided as an item is queued.)
        assert_eq!(batcher.shared.with(|s| s.flushing), 1);
        assert_eq!(*sizes.lock().unwrap(), vec![1]);
        // The fourth fills the batch: it is written beside the first.
        handles.push(submit(4));
        written(2).await;
        assert_eq!(batcher.shared.with(|s| s.flushing), 2);
        // A partial batch arriving now waits for one of the two to end,
        // and is then written by one flush, not split between both.
        handles.extend((5..=6).map(submit));
        while batcher.shared.with(|s| s.waiting.len()) < 2 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(3);
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap().ok(), Some(i as u32));
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 4, 2]);
        assert_eq!(batcher.shared.with(|s| s.flushing), 0);
    }

    #[tokio::test]
    async fn items_queued_together_share_a_write_and_keep_their_order() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = {
            let sizes = sizes.clone();
            Batcher::new(4, 1, move |items: Vec<u32>| {
                sizes.lock().unwrap().push(items.len());
                async move { items.into_iter().map(|i| i * 2).collect::<Vec<_>>() }
            })
        };
        let answers = batcher.submit_all((1..=6).collect()).await;
        let answers: Vec<_> = answers.into_iter().map(Result::ok).collect();
        assert_eq!(answers, (1..=6).map(|i| Some(i * 2)).collect::<Vec<_>>());
        // Six items at a limit of four: one full write, then the rest.
        assert_eq!(*sizes.lock().unwrap(), vec![4, 2]);
        assert!(batcher.submit_all(Vec::new()).await.is_empty());
        assert_eq!(batcher.shared.with(|s| s.flushing), 0);
    }

    #[tokio::test]
    async fn batches_never_exceed_the_limit() {
        let largest = Arc::new(AtomicUsize::new(0));
        let batcher = {
            let largest = largest.clone();
            Batcher::new(3, 1, move |items: Vec<u32>| {
                largest.fetch_max(items.len(), Ordering::Relaxed);
                async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    items
                }
            })
        };
        let handles: Vec<_> = (0..30)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.submit(i).await })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            assert_eq!(handle.await.unwrap().ok(), Some(i as u32));
        }
        let largest = largest.load(Ordering::Relaxed);
        assert!((1..=3).contains(&largest), "largest batch {largest}");
    }

    #[tokio::test]
    async fn a_lost_write_is_an_error_of_the_callers_kind() {
        #[derive(Debug, PartialEq)]
        struct Failed(String);
        impl From<BatchLost> for Failed {
            fn from(lost: BatchLost) -> Self {
                Self(lost.to_string())
            }
        }
        let batcher = Batcher::new(8, 1, |items: Vec<u32>| async move {
            assert!(!items.contains(&13), "unlucky");
            items.into_iter().map(Ok::<u32, Failed>).collect()
        });
        assert_eq!(batcher.write(2).await, Ok(2));
        assert_eq!(batcher.write(13).await, Err(Failed(BatchLost.to_string())));
    }

    #[tokio::test]
    async fn a_panicking_write_loses_its_batch_only() {
        let batcher = Batcher::new(8, 1, |items: Vec<u32>| async move {
            assert!(!items.contains(&13), "unlucky");
            items
        });
        assert!(batcher.submit(13).await.is_err());
        // With one flush slot, a slot kept by the panicked write would
        // leave this caller waiting forever.
        let next = tokio::time::timeout(Duration::from_secs(5), batcher.submit(7)).await;
        assert_eq!(next.ok().and_then(Result::ok), Some(7));
    }
}
