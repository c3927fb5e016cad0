//! The MQTT 5 QoS 1 subscriber that judges a run: it counts every event of the expected window
//! per stream (lost, duplicated, out of order) and records its latency from the send time in the
//! payload.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Filter;
use rumqttc::v5::{AsyncClient, MqttOptions};
use sse_e2e::mqtt::subscribe_and_drive;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::payload::{self, Stamp};
use crate::quantile::nearest_rank;
use crate::series::{self, Series};

/// What one stream of the window has seen.
#[derive(Default)]
struct StreamTally {
    /// One bit per sequence number of the window.
    seen: Vec<u64>,
    /// Highest sequence number received.
    max_seq: u64,
}

/// The counters of the current window `(lo, hi]` of every stream.
#[derive(Default)]
struct Tally {
    lo: u64,
    hi: u64,
    streams: Vec<StreamTally>,
    distinct: u64,
    expected: u64,
    duplicates: u64,
    out_of_order: u64,
    foreign: u64,
    latencies_ns: Vec<u64>,
    /// Arrival time of each of `latencies_ns`, ns since the epoch, in the same order.
    arrivals_ns: Vec<u64>,
    /// When the window started, ns since the epoch (the clock of the arrivals).
    start_ns: u64,
    complete_at: Option<Instant>,
    last_at: Option<Instant>,
}

impl Tally {
    fn reset(&mut self, streams: u32, lo: u64, hi: u64, start_ns: u64) {
        let words = ((hi - lo) as usize).div_ceil(64);
        self.lo = lo;
        self.hi = hi;
        self.streams = (0..streams)
            .map(|_| StreamTally {
                seen: vec![0; words],
                max_seq: lo,
            })
            .collect();
        self.distinct = 0;
        self.expected = u64::from(streams) * (hi - lo);
        self.duplicates = 0;
        self.out_of_order = 0;
        self.foreign = 0;
        self.latencies_ns = Vec::with_capacity(self.expected as usize);
        self.arrivals_ns = Vec::with_capacity(self.expected as usize);
        self.start_ns = start_ns;
        self.complete_at = None;
        self.last_at = None;
    }

    fn record(&mut self, stamp: Stamp, now_ns: u64, now: Instant) {
        self.last_at = Some(now);
        let (lo, hi) = (self.lo, self.hi);
        let Some(st) = self.streams.get_mut(stamp.stream as usize) else {
            self.foreign += 1;
            return;
        };
        if stamp.seq <= lo {
            // A redelivery of an earlier window.
            self.duplicates += 1;
            return;
        }
        if stamp.seq > hi {
            self.foreign += 1;
            return;
        }
        if stamp.seq < st.max_seq {
            self.out_of_order += 1;
        }
        st.max_seq = st.max_seq.max(stamp.seq);
        let bit = (stamp.seq - lo - 1) as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if st.seen[word] & mask != 0 {
            self.duplicates += 1;
            return;
        }
        st.seen[word] |= mask;
        self.distinct += 1;
        self.latencies_ns.push(now_ns.saturating_sub(stamp.ts));
        self.arrivals_ns.push(now_ns);
        if self.distinct == self.expected {
            self.complete_at = Some(now);
        }
    }
}

/// The outcome of one window.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events expected.
    pub expected: u64,
    /// Distinct expected events received.
    pub received: u64,
    /// Expected events never received.
    pub lost: u64,
    /// Deliveries of an event already received.
    pub duplicates: u64,
    /// Events that arrived after a later event of the same stream.
    pub out_of_order: u64,
    /// Messages that were not events of the window.
    pub foreign: u64,
    /// When the last expected event arrived (`None`: some were lost).
    pub complete_at: Option<Instant>,
    /// Latency of every received event, ns, sorted.
    pub latencies_ns: Vec<u64>,
    /// Their latency over time, in 100 ms buckets of arrival since the window started.
    pub series: Series,
}

impl Outcome {
    /// The `q` quantile (0..=1) of the latency, ns.
    pub fn latency_quantile(&self, q: f64) -> Option<u64> {
        nearest_rank(&self.latencies_ns, q)
    }
}

/// A connected subscriber to `<prefix>/#`; its event loop stops when dropped.
pub struct Subscriber {
    tally: Arc<Mutex<Tally>>,
    progress: watch::Receiver<u64>,
    streams: u32,
    _client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects to the broker on `port`, subscribes to `<prefix>/#` at QoS 1 and returns once
    /// the broker acknowledged the subscription.
    pub async fn connect(port: u16, prefix: &str, streams: u32) -> anyhow::Result<Self> {
        let id = format!(
            "bench-sub-{}-{}",
            std::process::id(),
            payload::now_ns() % 1_000_000
        );
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(60))
            .set_max_packet_size(Some(1024 * 1024));
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        opts.set_network_options(net);
        let (client, eventloop) = AsyncClient::new(opts, 100);
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (progress_tx, progress) = watch::channel(0u64);
        let t = tally.clone();
        let filters = vec![Filter::new(format!("{prefix}/#"), QoS::AtLeastOnce)];
        let task = subscribe_and_drive("bench subscriber", &client, eventloop, filters, move |p| {
            let now_ns = payload::now_ns();
            let now = Instant::now();
            let mut tally = t.lock().unwrap_or_else(PoisonError::into_inner);
            match payload::parse(&p.payload) {
                Some(stamp) => tally.record(stamp, now_ns, now),
                None => tally.foreign += 1,
            }
            let (d, done) = (tally.distinct, tally.complete_at.is_some());
            drop(tally);
            if done || d % 256 == 0 {
                progress_tx.send_replace(d);
            }
        })
        .await?;
        Ok(Self {
            tally,
            progress,
            streams,
            _client: client,
            task,
        })
    }

    /// Starts a new window, now: every stream is expected to deliver exactly `lo+1..=hi`.
    pub fn expect(&self, lo: u64, hi: u64) {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .reset(self.streams, lo, hi, payload::now_ns());
    }

    /// Waits until the window is complete, or until nothing arrived for `stall` (then the
    /// missing events are lost), and returns the outcome.
    pub async fn wait(&mut self, stall: Duration) -> Outcome {
        let mut last_progress = Instant::now();
        let mut last_distinct = 0;
        loop {
            {
                let t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
                if t.complete_at.is_some() {
                    break;
                }
                if t.distinct != last_distinct {
                    last_distinct = t.distinct;
                    last_progress = Instant::now();
                }
            }
            if last_progress.elapsed() > stall {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(500), self.progress.changed()).await;
        }
        let mut t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        let mut latencies_ns = std::mem::take(&mut t.latencies_ns);
        let arrivals_ns = std::mem::take(&mut t.arrivals_ns);
        let samples: Vec<(u64, u64)> = arrivals_ns
            .into_iter()
            .zip(latencies_ns.iter().copied())
            .collect();
        let series = Series::bucket(t.start_ns, series::BUCKET, &samples);
        latencies_ns.sort_unstable();
        Outcome {
            expected: t.expected,
            received: t.distinct,
            lost: t.expected - t.distinct,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            foreign: t.foreign,
            complete_at: t.complete_at,
            latencies_ns,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(stream: u32, seq: u64) -> Stamp {
        Stamp {
            stream,
            seq,
            ts: 1_000,
        }
    }

    #[test]
    fn tally_counts_loss_duplicates_and_order() {
        let mut t = Tally::default();
        t.reset(2, 10, 13, 0);
        let now = Instant::now();
        for (s, q) in [
            (0, 11),
            (0, 13),
            (0, 12),
            (0, 12),
            (1, 11),
            (1, 9),
            (1, 14),
            (5, 11),
        ] {
            t.record(stamp(s, q), 1_500, now);
        }
        assert_eq!(t.expected, 6);
        assert_eq!(t.distinct, 4);
        assert_eq!(t.duplicates, 2, "12 twice, 9 from an earlier window");
        assert_eq!(t.out_of_order, 2, "12 after 13, twice");
        assert_eq!(t.foreign, 2, "seq 14 and stream 5");
        assert!(t.complete_at.is_none());
        t.record(stamp(1, 12), 1_500, now);
        t.record(stamp(1, 13), 1_500, now);
        assert_eq!(t.complete_at, Some(now));
        assert!(t.latencies_ns.iter().all(|l| *l == 500));
        assert_eq!(
            t.arrivals_ns, [1_500; 6],
            "one arrival time per counted event"
        );
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let o = Outcome {
            expected: 100,
            received: 100,
            lost: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
            complete_at: None,
            latencies_ns: (1..=100).collect(),
            series: Series::default(),
        };
        assert_eq!(o.latency_quantile(0.5), Some(50));
        assert_eq!(o.latency_quantile(0.99), Some(99));
        assert_eq!(o.latency_quantile(0.999), Some(100));
        assert_eq!(o.latency_quantile(1.0), Some(100));
    }
}
