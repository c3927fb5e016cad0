//! One supervised connection loop for every MQTT client of the connector: poll the rumqttc event
//! loop; before each connect read the credentials and TLS files again; on an error describe it
//! without secrets (logged once per distinct reason while it repeats) and back off with jitter.
//!
//! Simple clients (ingest's checkpoint store, the schema registry client) hand their events to a
//! [`Handler`] and let [`Supervisor::run`] drive. The publisher, which must never cancel a poll
//! that may be writing while it admits messages and watches PUBACK deadlines, keeps its own poll
//! loop but is a [`Handler`] too and takes the same steps: [`Supervisor::prepare`] before a
//! connect, [`Supervisor::dispatch`] for each polled result, [`pause`] for the backoff. So
//! connecting, event hand-off, logging and backoff behave alike in all three.

use std::collections::VecDeque;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::ConnAck;
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, Request};
use tokio_util::sync::CancellationToken;

use super::{ClientSettings, describe};
use crate::Backoff;

/// What a client does with its connection, for [`Supervisor::run`].
pub trait Handler: Send {
    /// The broker accepted the connection; requests pushed to the front of `pending` (e.g. a
    /// subscription) go out first.
    fn on_connected(&mut self, ack: &ConnAck, pending: &mut VecDeque<Request>);
    /// Any other event of the event loop.
    fn on_event(&mut self, event: Event);
    /// The connection dropped or could not be made. `pending` holds what rumqttc would re-send
    /// after the next connect; a client that must not replay clears it.
    fn on_lost(&mut self, pending: &mut VecDeque<Request>);
}

/// The connection state one client's loop keeps: settings, backoff and the last failure.
#[derive(Debug)]
pub struct Supervisor {
    settings: ClientSettings,
    /// What the logs call the broker, e.g. "the checkpoint store's broker".
    what: &'static str,
    backoff: Backoff,
    last_failure: Option<String>,
    connected: bool,
}

impl Supervisor {
    /// A supervisor for a client with `settings`, named `what` in its logs.
    pub fn new(settings: ClientSettings, what: &'static str) -> Self {
        Self {
            settings,
            what,
            backoff: Backoff::standard(),
            last_failure: None,
            connected: false,
        }
    }

    /// The client's settings.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// A rumqttc client and its event loop with this client's options (packet limit included),
    /// with room for `capacity` requests in its channel.
    pub fn client(&self, capacity: usize) -> (AsyncClient, EventLoop) {
        AsyncClient::new(self.settings.options(), capacity)
    }

    /// Whether the last event was a successful CONNACK and no error since.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Before a connect (no-op while connected): reads the credentials and TLS files into the
    /// event loop's options. On failure it logs the reason and returns the delay before the next
    /// attempt.
    pub async fn prepare(&mut self, eventloop: &mut EventLoop) -> Result<(), Duration> {
        if self.connected {
            return Ok(());
        }
        match self.settings.prepare(&mut eventloop.options).await {
            Ok(()) => Ok(()),
            Err(reason) => {
                self.failed(reason);
                Err(self.backoff.next_delay())
            }
        }
    }

    /// Records a successful CONNACK.
    pub fn connected(&mut self, ack: &ConnAck) {
        self.backoff.connected();
        self.last_failure = None;
        self.connected = true;
        tracing::info!(
            broker = %self.settings.broker.address,
            session_present = ack.session_present,
            "connected to {}", self.what
        );
    }

    /// Records a failed connect or a dropped connection; returns the delay before the next
    /// attempt.
    pub fn lost(&mut self, e: &ConnectionError) -> Duration {
        self.failed(describe(e));
        self.backoff.next_delay()
    }

    /// The client dropped the connection itself (e.g. to re-send); returns the delay before
    /// the next attempt.
    pub fn recycled(&mut self) -> Duration {
        self.connected = false;
        self.backoff.next_delay()
    }

    /// Hands one polled result of the event loop to `handler`: a CONNACK is recorded and goes
    /// to [`Handler::on_connected`], an error is described and logged and goes to
    /// [`Handler::on_lost`], any other event to [`Handler::on_event`]. `pending` is the event
    /// loop's queue of requests for the next connect.
    pub fn dispatch(
        &mut self,
        polled: Result<Event, ConnectionError>,
        pending: &mut VecDeque<Request>,
        handler: &mut impl Handler,
    ) -> Dispatched {
        match polled {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                self.connected(&ack);
                handler.on_connected(&ack, pending);
                Dispatched::Connected
            }
            Ok(ev) => {
                handler.on_event(ev);
                Dispatched::Event
            }
            Err(e) => {
                let delay = self.lost(&e);
                handler.on_lost(pending);
                Dispatched::Lost(delay)
            }
        }
    }

    fn failed(&mut self, reason: String) {
        let broker = self.settings.broker.address.to_string();
        if self.connected {
            tracing::warn!(%reason, %broker, "connection to {} lost; reconnecting", self.what);
        } else if self.last_failure.as_deref() != Some(reason.as_str()) {
            tracing::error!(%reason, %broker, "cannot connect to {}; retrying", self.what);
        } else {
            tracing::debug!(%reason, "connect to {} failed again; retrying", self.what);
        }
        self.last_failure = Some(reason);
        self.connected = false;
    }

    /// Drives `eventloop` for `handler` until `token` is cancelled, reconnecting with backoff;
    /// then sends DISCONNECT (briefly waiting for it to go out).
    pub async fn run(
        mut self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        mut handler: impl Handler,
        token: CancellationToken,
    ) {
        loop {
            if let Err(delay) = self.prepare(&mut eventloop).await {
                if pause(delay, &token).await {
                    continue;
                }
                break;
            }
            let polled = tokio::select! {
                ev = eventloop.poll() => ev,
                _ = token.cancelled() => break,
            };
            if let Dispatched::Lost(delay) =
                self.dispatch(polled, &mut eventloop.pending, &mut handler)
                && !pause(delay, &token).await
            {
                break;
            }
        }
        if self.connected && client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                while let Ok(ev) = eventloop.poll().await {
                    if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
}

/// What [`Supervisor::dispatch`] made of a polled result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatched {
    /// A CONNACK: the handler is connected.
    Connected,
    /// Any other event.
    Event,
    /// The connection dropped or could not be made: wait this long before the next attempt.
    Lost(Duration),
}

/// Waits a backoff `delay`; false when `token` was cancelled first (the loop then stops).
pub async fn pause(delay: Duration, token: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = token.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, PingResp};

    use super::*;
    use crate::mqtt::{Broker, BrokerAddress};

    /// Records what it was handed; on a lost connection it drops what rumqttc would re-send.
    #[derive(Default)]
    struct Recorder(Vec<&'static str>);

    impl Handler for Recorder {
        fn on_connected(&mut self, _ack: &ConnAck, pending: &mut VecDeque<Request>) {
            self.0.push("connected");
            pending.push_front(Request::PingReq);
        }
        fn on_event(&mut self, _event: Event) {
            self.0.push("event");
        }
        fn on_lost(&mut self, pending: &mut VecDeque<Request>) {
            self.0.push("lost");
            pending.clear();
        }
    }

    #[test]
    fn dispatch_hands_each_polled_result_to_the_handler() {
        let broker = Broker::new(BrokerAddress::parse("mqtt://127.0.0.1:1").unwrap());
        let settings = ClientSettings::new(broker, "c".into(), 1024);
        let mut s = Supervisor::new(settings, "the test broker");
        let mut pending = VecDeque::new();
        let mut h = Recorder::default();
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::Success,
            properties: None,
        };
        let got = s.dispatch(
            Ok(Event::Incoming(Incoming::ConnAck(ack))),
            &mut pending,
            &mut h,
        );
        assert_eq!(got, Dispatched::Connected);
        assert!(s.is_connected() && pending.len() == 1);
        let ping = Event::Incoming(Incoming::PingResp(PingResp));
        assert_eq!(
            s.dispatch(Ok(ping), &mut pending, &mut h),
            Dispatched::Event
        );
        let got = s.dispatch(Err(ConnectionError::RequestsDone), &mut pending, &mut h);
        assert!(
            matches!(got, Dispatched::Lost(d) if !d.is_zero()),
            "{got:?}"
        );
        assert!(!s.is_connected() && pending.is_empty());
        assert_eq!(h.0, ["connected", "event", "lost"]);
    }
}
