//! The in-flight byte budget (`--max-in-flight-bytes`), shared by every stream reader: a reader
//! takes its share for an SSE event before handing the event's routed copies on, and the share
//! comes back when the last copy is acknowledged (dropped). So every byte ingest holds for an
//! event counts, wherever it waits: in the queue to the forwarder or unacknowledged in flight.
//! Each stream also holds at most its [`Share`] of events (`--max-in-flight-per-stream`), so a
//! stream that floods cannot take the whole window and queue every other stream's events behind
//! its own. A reader that has to wait, for either, says so ([`Budget::starved`]): the forwarder
//! then asks for the acknowledgements held downstream, which would otherwise wait out the
//! publisher's ack delay.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;

use futures::task::AtomicWaker;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// Bytes allowed for each routed copy besides the strings it owns: its route (shared, but
/// copied into every message sent), trace context and framing.
pub const ROUTED_COPY_BYTES: usize = 512;

/// The byte budget; cheap to clone (every clone shares it).
#[derive(Debug, Clone)]
pub struct Budget {
    permits: Arc<Semaphore>,
    max: u32,
    /// Raised whenever a taker has to wait, until [`Budget::starved`] sees it.
    starved: Arc<Starved>,
}

/// A taker had to wait: a flag and the one waiter (the forwarder), and how many takers wait
/// now. Not a `Notify`: the forwarder polls it at every turn of its loop, and an atomic waker
/// costs no lock there.
#[derive(Debug, Default)]
struct Starved {
    raised: AtomicBool,
    waiter: AtomicWaker,
    waiting: AtomicUsize,
}

/// Counts one taker in [`Starved::waiting`] for as long as it lives (a taker may be dropped
/// while it waits, when its stream stops).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The largest budget, in bytes (4 GiB - 1): permits are taken in `u32`s, so
/// `--max-in-flight-bytes` refuses more rather than quietly using less.
pub const MAX_BYTES: u64 = u32::MAX as u64;

impl Budget {
    /// A budget of `max_bytes` (at most [`MAX_BYTES`]).
    pub fn new(max_bytes: usize) -> Self {
        let max = u32::try_from(max_bytes.max(1)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(max as usize)),
            max,
            starved: Arc::default(),
        }
    }

    /// Waits until the stream's `share` has room for one more event and `bytes` of the budget
    /// are free, and takes both; an event larger than the whole budget takes all of it (it goes
    /// alone, never waits forever).
    pub async fn take(&self, share: &Share, bytes: usize) -> Held {
        let slot = self.wait(share.0.clone().acquire_owned()).await;
        let n = u32::try_from(bytes).unwrap_or(u32::MAX).clamp(1, self.max);
        let bytes = self.wait(self.permits.clone().acquire_many_owned(n)).await;
        Held {
            // The semaphores are never closed; were they, nothing would be held back.
            _permit: Some(Arc::new((slot, bytes))),
        }
    }

    /// Acquires through `acquire`, raising the starvation signal first if it has to wait.
    async fn wait(
        &self,
        acquire: impl Future<Output = Result<OwnedSemaphorePermit, AcquireError>>,
    ) -> Option<OwnedSemaphorePermit> {
        let mut acquire = std::pin::pin!(acquire);
        match futures::poll!(acquire.as_mut()) {
            Poll::Ready(r) => r.ok(),
            Poll::Pending => {
                let _waiting = Waiting::new(&self.starved.waiting);
                self.starved.raised.store(true, Ordering::Release);
                self.starved.waiter.wake();
                acquire.await.ok()
            }
        }
    }

    /// Completes once a taker has had to wait since the last time it completed: what it waits
    /// for is held by events in flight. One task waits on it at a time.
    pub fn starved(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| {
            let s = &self.starved;
            s.waiter.register(cx.waker());
            if s.raised.load(Ordering::Acquire) && s.raised.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Whether a taker waits now, for the budget or for its stream's share.
    pub fn has_waiters(&self) -> bool {
        self.starved.waiting.load(Ordering::Acquire) > 0
    }

    /// Bytes of the budget free now.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// The whole budget, in bytes (`--max-in-flight-bytes`, at most `u32::MAX`).
    pub fn max(&self) -> usize {
        self.max as usize
    }

    /// Bytes of the budget taken now (held by events read and not yet acknowledged).
    pub fn held(&self) -> usize {
        self.max().saturating_sub(self.available())
    }
}

/// How many of its SSE events one stream may hold at once (`--max-in-flight-per-stream`), read
/// and not yet acknowledged; one per stream reader, cheap to clone.
#[derive(Debug, Clone)]
pub struct Share(Arc<Semaphore>);

impl Share {
    /// A share of `events` (at least one).
    pub fn new(events: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            events.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }
}

/// An event's slot in its stream's share and its bytes of the budget, returned when the last
/// routed copy holding them is dropped.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// Returns both when the last clone is dropped (never read: held for its drop).
    _permit: Option<Arc<(Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>)>>,
}

impl Held {
    /// Holds nothing (status reports, tests).
    pub fn none() -> Self {
        Self { _permit: None }
    }
}

/// Routed events compare by content: which share of the budget they hold does not matter.
impl PartialEq for Held {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Held {}

#[cfg(test)]
mod tests {
    use super::*;

    /// A share that never holds a taker back.
    fn any() -> Share {
        Share::new(usize::MAX)
    }

    #[tokio::test]
    async fn shares_return_when_the_last_copy_is_dropped() {
        let b = Budget::new(100);
        let a = b.take(&any(), 60).await;
        let copy = a.clone();
        assert_eq!(b.available(), 40);
        drop(a);
        assert_eq!(b.available(), 40, "a copy still holds it");
        drop(copy);
        assert_eq!(b.available(), 100);
    }

    #[tokio::test]
    async fn a_taker_waits_while_the_budget_is_spent_and_a_huge_one_takes_all() {
        let b = Budget::new(100);
        let first = b.take(&any(), 80).await;
        let share = any();
        let waiting = b.take(&share, 30);
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending());
        drop(first);
        let second = waiting.await;
        assert_eq!(b.available(), 70);
        drop(second);
        let huge = b.take(&any(), 10_000).await;
        assert_eq!(b.available(), 0);
        drop(huge);
        assert_eq!(b.available(), 100);
    }

    #[tokio::test]
    async fn a_taker_that_has_to_wait_says_so_once_and_one_that_does_not_is_silent() {
        let b = Budget::new(100);
        let first = b.take(&any(), 80).await;
        let starved = b.starved();
        tokio::pin!(starved);
        assert!(
            futures::poll!(&mut starved).is_pending(),
            "nobody waited yet"
        );
        let share = any();
        let waiting = b.take(&share, 30);
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending());
        assert!(
            futures::poll!(&mut starved).is_ready(),
            "the waiting taker said so"
        );
        drop(first);
        drop(waiting.await);
        let starved = b.starved();
        tokio::pin!(starved);
        let _ = b.take(&any(), 10).await;
        assert!(
            futures::poll!(&mut starved).is_pending(),
            "a taker served at once is silent"
        );
    }

    #[tokio::test]
    async fn a_stream_holds_at_most_its_share_and_says_when_it_waits_for_it() {
        let b = Budget::new(1000);
        let (flood, calm) = (Share::new(2), Share::new(2));
        let one = b.take(&flood, 10).await;
        let _two = b.take(&flood, 10).await;
        let starved = b.starved();
        tokio::pin!(starved);
        let third = b.take(&flood, 10);
        tokio::pin!(third);
        assert!(
            futures::poll!(&mut third).is_pending(),
            "the flood's share is full"
        );
        assert!(futures::poll!(&mut starved).is_ready());
        assert!(b.has_waiters());
        assert_eq!(
            b.available(),
            980,
            "a taker waiting for its share holds no bytes"
        );
        // Another stream is not held back by the flood's share.
        let _calm = b.take(&calm, 10).await;
        drop(one);
        let _third = third.await;
        assert!(!b.has_waiters());
        assert_eq!(b.available(), 970);
    }
}
