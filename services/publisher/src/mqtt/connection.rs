//! The connection task: connect (through the shared supervisor), admit messages, watch the
//! deadlines, reconnect, drain at shutdown.
//!
//! The task polls the event loop without ever cancelling a poll that may be writing: new messages
//! go through rumqttc's request channel, which wakes the running `poll` future, so nothing is
//! half-written and dropped. It admits a new message only while connected and while fewer than
//! `min(--max-inflight, broker receive maximum)` messages are outstanding; with the broker's
//! in-order PUBACKs (MQTT 5 section 4.6) packet ids then never collide, and a collision that
//! would lose a message forces a reconnect (re-send) instead. This is why the publisher drives
//! its own loop rather than [`Supervisor::run`], which cancels its poll on shutdown and has no
//! deadlines of its own; connecting, event hand-off and backoff are the supervisor's.
//!
//! # Authentication and TLS, read at every connect
//!
//! Before each connect the password file, the service account token file (`K8S-SAT`: the
//! token is the CONNECT's authentication data, MQTT 5 enhanced authentication as Azure IoT
//! Operations' broker expects it) and the TLS files are read afresh, so rotated secrets take
//! effect on the next connection. A connect that fails is logged with a reason naming the
//! problem (refused credentials, an untrusted broker certificate, a rejected client
//! certificate), never the secret, and health stays NOT_SERVING.
//!
//! # Lost PUBACKs
//!
//! A QoS 1 publish that has waited `--puback-timeout` for its PUBACK recycles the connection:
//! the socket is dropped and everything outstanding is re-sent after the next CONNACK.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::Outgoing;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop};
use sse_runtime::mqtt::{Dispatched, Handler, Supervisor, pause};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::book::Book;
use super::{DRAIN_TIMEOUT, Job, Stamper};
use crate::config::MqttSettings;
use crate::metrics::Metrics;

/// Why one connection's turn of polling ended.
enum Outcome {
    /// The event loop yielded an event or an error.
    Polled(Box<Result<Event, ConnectionError>>),
    /// The drain deadline passed, or stopping found no connection to drain.
    Deadline,
    /// A QoS 1 publish waited `--puback-timeout` for its PUBACK.
    PubackTimeout,
}

/// What the task does after an event.
enum Next {
    /// Poll again.
    Poll,
    /// Wait this backoff before connecting again.
    Wait(Duration),
    /// The task is done.
    Stop,
}

/// The deadlines one turn waits for, besides the event loop.
#[derive(Clone, Copy)]
struct Deadlines {
    drain: Option<Instant>,
    puback: Option<Instant>,
    store: Option<Instant>,
}

impl Deadlines {
    /// The earliest one.
    fn next(&self) -> Option<Instant> {
        [self.drain, self.puback, self.store]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The connection task's state besides the event loop (which the running poll borrows).
struct Task {
    settings: MqttSettings,
    client: AsyncClient,
    jobs: mpsc::Receiver<Job>,
    connected_tx: watch::Sender<bool>,
    book: Book,
    /// Set once stopping: by when outstanding messages must be acknowledged.
    draining: Option<Instant>,
    /// DISCONNECT was queued: the connection's end is expected.
    disconnect_sent: bool,
    /// Where reconnects are counted (`None`: metrics are off).
    metrics: Option<Arc<Metrics>>,
    /// CONNACKs so far: every one after the first is a reconnect.
    connects: u64,
}

/// The connection task: poll, admit, reconnect, drain.
pub(super) async fn run(
    settings: MqttSettings,
    jobs: mpsc::Receiver<Job>,
    connected_tx: watch::Sender<bool>,
    token: CancellationToken,
    stamper: Arc<Stamper>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut supervisor = Supervisor::new(settings.client.clone(), "the mqtt broker");
    let (client, mut eventloop) = supervisor.client(usize::from(settings.max_inflight) + 1);
    let book = Book::new(&settings, stamper);
    let mut task = Task {
        settings,
        client,
        jobs,
        connected_tx,
        book,
        draining: None,
        disconnect_sent: false,
        metrics,
        connects: 0,
    };
    // Made once, not at every turn (which comes about twice per event): the stop signal and one
    // timer for whichever deadline is next (drain, PUBACK, state store).
    let stopped = token.clone().cancelled_owned();
    tokio::pin!(stopped);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut delay: Option<Duration> = None;
    loop {
        if let Some(d) = delay.take() {
            // The broker is away while stopping: nothing more can be acknowledged.
            if task.draining.is_some() || !pause(d, &token).await {
                break;
            }
        }
        if let Err(d) = supervisor.prepare(&mut eventloop).await {
            delay = Some(d);
            continue;
        }
        let next = match task
            .turn(&mut eventloop, stopped.as_mut(), timer.as_mut())
            .await
        {
            Outcome::Deadline => Next::Stop,
            Outcome::PubackTimeout => task.puback_timeout(&mut eventloop, &mut supervisor),
            Outcome::Polled(ev) => task.polled(*ev, &mut eventloop, &mut supervisor),
        };
        match next {
            Next::Poll => {}
            Next::Wait(d) => delay = Some(d),
            Next::Stop => break,
        }
        task.disconnect_if_drained();
    }
    task.stopped();
}

impl Task {
    /// Polls the event loop once, meanwhile admitting messages and watching the stop signal
    /// and the deadlines; the poll is never cancelled.
    async fn turn(
        &mut self,
        eventloop: &mut EventLoop,
        mut stopped: Pin<&mut WaitForCancellationFutureOwned>,
        mut timer: Pin<&mut Sleep>,
    ) -> Outcome {
        let poll = eventloop.poll();
        tokio::pin!(poll);
        loop {
            self.book.readmit(&self.client);
            let deadlines = self.deadlines();
            let next = deadlines.next();
            if let Some(at) = next
                && at != timer.deadline()
            {
                timer.as_mut().reset(at);
            }
            let admitting =
                self.book.is_connected() && self.draining.is_none() && self.book.has_room();
            let step = tokio::select! {
                biased;
                ev = &mut poll => return Outcome::Polled(Box::new(ev)),
                _ = stopped.as_mut(), if self.draining.is_none() => self.on_stop(),
                // Every deadline due when it fires is dealt with, so the next turn sets the
                // timer to a later one (or leaves it alone when there is none).
                _ = timer.as_mut(), if next.is_some() => self.on_timer(deadlines),
                job = self.jobs.recv(), if admitting => {
                    self.on_job(job);
                    None
                }
            };
            if let Some(outcome) = step {
                return outcome;
            }
        }
    }

    /// The deadlines of the current state.
    fn deadlines(&self) -> Deadlines {
        Deadlines {
            drain: self.draining,
            puback: self
                .book
                .oldest_unacked()
                .map(|t| t + self.settings.puback_timeout)
                .filter(|_| self.book.is_connected()),
            store: self.book.next_store_deadline(),
        }
    }

    /// Shutdown began: take no new messages, drain the outstanding ones.
    fn on_stop(&mut self) -> Option<Outcome> {
        self.draining = Some(Instant::now() + DRAIN_TIMEOUT);
        self.jobs.close();
        self.disconnect_if_drained();
        (!self.book.is_connected()).then_some(Outcome::Deadline)
    }

    /// The timer fired: ends the turn for a due drain or PUBACK deadline; expires due state
    /// store waits.
    fn on_timer(&mut self, deadlines: Deadlines) -> Option<Outcome> {
        let now = Instant::now();
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if due(deadlines.drain) {
            return Some(Outcome::Deadline);
        }
        if due(deadlines.puback) {
            return Some(Outcome::PubackTimeout);
        }
        if due(deadlines.store) {
            self.book.expire_store(now);
        }
        None
    }

    /// A message arrived (`None`: every sender is gone, so drain).
    fn on_job(&mut self, job: Option<Job>) {
        let Some(job) = job else {
            self.draining = Some(Instant::now() + DRAIN_TIMEOUT);
            return;
        };
        self.book.admit(job, &self.client);
        // At full speed more are waiting: take them in this turn.
        while self.book.has_room() {
            let Ok(job) = self.jobs.try_recv() else { break };
            self.book.admit(job, &self.client);
        }
    }

    /// Hands a polled result to the book through the supervisor.
    fn polled(
        &mut self,
        polled: Result<Event, ConnectionError>,
        eventloop: &mut EventLoop,
        supervisor: &mut Supervisor,
    ) -> Next {
        if self.disconnect_sent
            && matches!(polled, Err(_) | Ok(Event::Outgoing(Outgoing::Disconnect)))
        {
            return Next::Stop;
        }
        match supervisor.dispatch(polled, &mut eventloop.pending, &mut self.book) {
            Dispatched::Connected => {
                if self.connects > 0
                    && let Some(m) = &self.metrics
                {
                    m.reconnected();
                }
                self.connects += 1;
                let _ = self.connected_tx.send(true);
            }
            Dispatched::Lost(delay) => {
                self.lost(eventloop);
                return Next::Wait(delay);
            }
            Dispatched::Event if self.book.needs_reset() => {
                tracing::error!("mqtt packet id collision lost a publish; reconnecting to re-send");
                eventloop.clean();
                Handler::on_lost(&mut self.book, &mut eventloop.pending);
                self.lost(eventloop);
            }
            Dispatched::Event => {}
        }
        Next::Poll
    }

    /// No PUBACK in time: drops the connection, so that everything is re-sent after the next
    /// CONNACK.
    fn puback_timeout(&mut self, eventloop: &mut EventLoop, supervisor: &mut Supervisor) -> Next {
        tracing::warn!(
            timeout = ?self.settings.puback_timeout,
            outstanding = self.book.in_flight(),
            "no PUBACK in time; recycling the mqtt connection to re-send"
        );
        eventloop.clean();
        Handler::on_lost(&mut self.book, &mut eventloop.pending);
        self.lost(eventloop);
        Next::Wait(supervisor.recycled())
    }

    /// After a dropped connection (the book has re-queued what rumqttc held): a colliding
    /// publish is the book's to re-send too, and health turns NOT_SERVING.
    fn lost(&mut self, eventloop: &mut EventLoop) {
        eventloop.state.collision = None;
        let _ = self.connected_tx.send(false);
    }

    /// Once stopping with nothing outstanding: say goodbye to the broker.
    fn disconnect_if_drained(&mut self) {
        if self.draining.is_some()
            && self.book.idle()
            && self.book.is_connected()
            && !self.disconnect_sent
        {
            self.disconnect_sent = self.client.try_disconnect().is_ok();
        }
    }

    /// The task ends: health turns NOT_SERVING; what is unacknowledged is re-sent upstream.
    fn stopped(self) {
        let _ = self.connected_tx.send(false);
        if !self.book.idle() {
            tracing::warn!(
                unacknowledged = self.book.outstanding(),
                "stopping with messages the broker has not acknowledged; upstream re-sends them"
            );
        }
    }
}
