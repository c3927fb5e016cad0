//! Events whose schema waits (on the registry: a new version's write, or an external registry's
//! answer), parked so that a Process stream's other SSE streams go on meanwhile.
//!
//! A Process stream carries every SSE stream of an ingest replica, and its events were prepared
//! one at a time: one event waiting on a registry call held all of them (in Azure mode a slow
//! or failing registry held every stream for as long as the call and its retries took, once per
//! new subject). Now an event whose preparation does not finish at its first poll is parked, and
//! the events of its SSE stream (its stream key) that arrive after it wait behind it, so each
//! stream keeps its order; events of other streams are forwarded at once. At most
//! [`PARKED_EVENTS_MAX`] events are held here: beyond that the Process stream reads no more from
//! ingest until some are done.

use std::collections::{HashMap, VecDeque};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use sse_proto::v1::Event;

/// Most events held per Process stream, waiting or behind one that waits: ingest's default
/// window (`--max-in-flight`), so a window of new datasets fits.
pub const PARKED_EVENTS_MAX: usize = 10_000;

/// What preparing an event at once made of it: the event prepared, or handed back because its
/// preparation has to wait (an enum rather than a `Result`: neither is a failure).
pub enum Now {
    /// Prepared.
    Ready(Event),
    /// Not prepared: its preparation waits.
    Wait(Event),
}

/// The events of one Process stream whose preparation waits, and the events behind them.
pub struct Parked<'a> {
    /// Preparations under way, at most one per stream key; each yields its prepared event.
    waiting: FuturesUnordered<BoxFuture<'a, Event>>,
    /// For each stream key with a preparation under way, the events that arrived after it.
    behind: HashMap<String, VecDeque<Event>>,
    /// Events held: waiting or behind.
    held: usize,
}

impl Default for Parked<'_> {
    fn default() -> Self {
        Self {
            waiting: FuturesUnordered::new(),
            behind: HashMap::new(),
            held: 0,
        }
    }
}

impl<'a> Parked<'a> {
    /// Whether more events may be read from ingest.
    pub fn has_room(&self) -> bool {
        self.held < PARKED_EVENTS_MAX
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Takes `ev`, prepared by `now` when that needs no wait, else by
    /// `prepare`: the prepared event when its stream has none waiting and it is ready at once;
    /// otherwise it is held (behind its stream's waiting event, or waiting itself) and `None` is
    /// returned.
    pub fn offer(
        &mut self,
        ev: Event,
        now: impl FnOnce(Event) -> Now,
        prepare: &impl Fn(Event) -> BoxFuture<'a, Event>,
    ) -> Option<Event> {
        if let Some(queue) = self.behind.get_mut(&ev.stream_key) {
            queue.push_back(ev);
            self.held += 1;
            return None;
        }
        let ev = match now(ev) {
            Now::Ready(ready) => return Some(ready),
            Now::Wait(ev) => ev,
        };
        let key = ev.stream_key.clone();
        let ready = self.start(ev, prepare);
        if ready.is_none() {
            self.behind.insert(key, VecDeque::new());
            self.held += 1;
        }
        ready
    }

    /// The next waiting event to be prepared, followed by those behind it that are then ready
    /// at once, in their stream's order; `None` when none waits.
    pub async fn next(
        &mut self,
        prepare: &impl Fn(Event) -> BoxFuture<'a, Event>,
    ) -> Option<Vec<Event>> {
        let done = self.waiting.next().await?;
        self.held -= 1;
        let key = done.stream_key.clone();
        let mut ready = vec![done];
        let Some(queue) = self.behind.get_mut(&key) else {
            return Some(ready);
        };
        while let Some(ev) = queue.pop_front() {
            let mut fut = prepare(ev);
            match (&mut fut).now_or_never() {
                Some(ev) => {
                    self.held -= 1;
                    ready.push(ev);
                }
                None => {
                    // Still held (now waiting); the rest stay behind it.
                    self.waiting.push(fut);
                    return Some(ready);
                }
            }
        }
        self.behind.remove(&key);
        Some(ready)
    }

    /// Starts preparing `ev`: the prepared event if ready at the first poll, else `None` and
    /// the preparation waits (the same future, polled on from where it stopped).
    fn start(
        &mut self,
        ev: Event,
        prepare: &impl Fn(Event) -> BoxFuture<'a, Event>,
    ) -> Option<Event> {
        let mut fut = prepare(ev);
        let ready = (&mut fut).now_or_never();
        if ready.is_none() {
            self.waiting.push(fut);
        }
        ready
    }
}

#[cfg(test)]
mod tests;
