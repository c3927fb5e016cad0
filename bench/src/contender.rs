//! One contender of a run (the pipeline, the raw ceiling, the Python bridge or the bare
//! architecture): its feed, its subscriber and its processes, and one measured window of events.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sse_e2e::broker::Mosquitto;
use tokio::time::Instant;

use crate::pipeline::{Connector, Pipeline};
use crate::python::Bridge;
use crate::raw::RawPublisher;
use crate::series::Series;
use crate::skeleton::Skeleton;
use crate::source::LoadSource;
use crate::subscriber::Subscriber;
use crate::{procstat, python};

/// Which system carries the events from the source to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// sse-ingest → sse-schema → sse-publisher.
    Pipeline,
    /// The pipeline with mTLS between its services (opt-in): what authenticating them costs.
    Mtls,
    /// `sse-connector`: the same three services in one process.
    Connector,
    /// A rumqttc publisher straight to the broker (no SSE at all): the ceiling.
    Raw,
    /// httpx-sse + paho-mqtt, one reader thread per stream.
    Python,
    /// The pipeline (or the connector) again, from the binaries in `BENCH_BASELINE` (another
    /// build, for an A/B comparison within one run).
    Baseline,
    /// `sse-bench-skeleton`: three processes joined by gRPC bidi streams with the services' real
    /// messages but none of their logic (opt-in): what the architecture alone costs.
    Skeleton,
    /// The skeleton with both gRPC hops over the services' mTLS (opt-in): the floor the `mtls`
    /// contender is compared with.
    #[serde(rename = "skeleton-mtls")]
    SkeletonMtls,
}

impl Kind {
    /// The name used in tables and topics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Pipeline => "pipeline",
            Kind::Mtls => "mtls",
            Kind::Connector => "connector",
            Kind::Raw => "raw",
            Kind::Python => "python",
            Kind::Baseline => "baseline",
            Kind::Skeleton => "skeleton",
            Kind::SkeletonMtls => "skeleton-mtls",
        }
    }
}

/// The measurements of one window.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// Which contender.
    pub kind: Kind,
    /// Run number (0-based; contenders interleave within a run number).
    pub run: usize,
    /// Events expected (streams × events per stream).
    pub events: u64,
    /// Expected events never delivered.
    pub lost: u64,
    /// Extra deliveries.
    pub duplicates: u64,
    /// Events delivered after a later one of the same stream.
    pub out_of_order: u64,
    /// From the start of the burst to the last event at the subscriber, s.
    pub seconds: f64,
    /// Events delivered per second.
    pub events_per_s: f64,
    /// Median latency, µs.
    pub p50_us: Option<f64>,
    /// 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// 99.9th percentile latency, µs.
    pub p999_us: Option<f64>,
    /// Worst latency, µs.
    pub max_us: Option<f64>,
    /// CPU time of the bridge's processes per event, µs (none for raw: nothing bridges).
    pub cpu_us_per_event: Option<f64>,
    /// The same per process (`name`, µs per event).
    pub cpu_split: Vec<(String, f64)>,
    /// The broker's CPU time per event over the window, µs: what carrying this contender's
    /// messages in and out costs it (how a client writes its packets moves it).
    pub broker_cpu_us_per_event: Option<f64>,
    /// Latency over time: 100 ms buckets of arrival since the window started.
    pub series: Series,
}

enum Feed {
    Sse(LoadSource, Bridging),
    Raw(Arc<RawPublisher>),
}

enum Bridging {
    Pipeline(Box<Pipeline>),
    Connector(Box<Connector>),
    Python(Box<Bridge>),
    Skeleton(Box<Skeleton>),
}

/// A contender ready to run windows.
pub struct Contender {
    /// Which one.
    pub kind: Kind,
    streams: u32,
    sub: Subscriber,
    feed: Feed,
    sent: u64,
    /// The broker's process, for its CPU time.
    broker_pid: Option<u32>,
}

impl Contender {
    /// Sets `kind` up for `streams` streams and pushes one warm-up event through every stream
    /// (connections open, schemas registered) before any measured window.
    pub async fn start(kind: Kind, broker: &Mosquitto, streams: u32) -> anyhow::Result<Self> {
        let prefix = format!("bench/{}", kind.name());
        let sub = Subscriber::connect(broker.port, &prefix, streams).await?;
        let feed = match kind {
            Kind::Raw => Feed::Raw(Arc::new(
                RawPublisher::connect(broker.port, &prefix, streams).await?,
            )),
            Kind::Pipeline | Kind::Mtls | Kind::Connector | Kind::Baseline => {
                let (bins, form) = match kind {
                    Kind::Baseline => crate::baseline()
                        .ok_or_else(|| anyhow::anyhow!("baseline: BENCH_BASELINE is not set"))?,
                    _ => (crate::pipeline_dir(), kind),
                };
                let source = LoadSource::start(streams, Duration::from_secs(15)).await?;
                let bridging = if form == Kind::Connector {
                    let c = Connector::start(&bins, broker, &source, streams, &prefix).await?;
                    Bridging::Connector(Box::new(c))
                } else {
                    let mtls = kind == Kind::Mtls;
                    let p = Pipeline::start(&bins, broker, &source, streams, &prefix, mtls).await?;
                    Bridging::Pipeline(Box::new(p))
                };
                Feed::Sse(source, bridging)
            }
            Kind::Python => {
                python::ensure_installed().map_err(anyhow::Error::msg)?;
                let source = LoadSource::start(streams, Duration::from_secs(15)).await?;
                let b = Bridge::start(&source.base_url(), streams, broker.port, &prefix).await?;
                Feed::Sse(source, Bridging::Python(Box::new(b)))
            }
            Kind::Skeleton | Kind::SkeletonMtls => {
                let source = LoadSource::start(streams, Duration::from_secs(15)).await?;
                let bins = crate::pipeline_dir();
                let mtls = kind == Kind::SkeletonMtls;
                let s = Skeleton::start(&bins, broker, &source, streams, &prefix, mtls).await?;
                Feed::Sse(source, Bridging::Skeleton(Box::new(s)))
            }
        };
        let mut c = Self {
            kind,
            streams,
            sub,
            feed,
            sent: 0,
            broker_pid: broker.pid(),
        };
        let warm = c.window(1, None, Duration::from_secs(60)).await?;
        if warm.lost > 0 {
            anyhow::bail!(
                "{}: warm-up event of {} of {} streams never arrived{}",
                kind.name(),
                warm.lost,
                streams,
                c.logs()
            );
        }
        Ok(c)
    }

    fn logs(&self) -> String {
        match &self.feed {
            Feed::Sse(_, Bridging::Pipeline(p)) => format!("\n{}", p.log_tail()),
            Feed::Sse(_, Bridging::Skeleton(s)) => format!("\n{}", s.log_tail()),
            Feed::Sse(_, Bridging::Connector(c)) => format!("\n{}", c.log_tail()),
            _ => String::new(),
        }
    }

    /// CPU time of the bridging processes so far.
    fn cpu(&self) -> Vec<(String, Duration)> {
        match &self.feed {
            Feed::Raw(_) => vec![],
            Feed::Sse(_, Bridging::Pipeline(p)) => ["ingest", "schema", "publisher"]
                .into_iter()
                .map(String::from)
                .zip(p.cpu())
                .collect(),
            Feed::Sse(_, Bridging::Skeleton(s)) => crate::skeleton::ROLES
                .into_iter()
                .map(String::from)
                .zip(s.cpu())
                .collect(),
            Feed::Sse(_, Bridging::Connector(c)) => vec![("connector".into(), c.cpu())],
            Feed::Sse(_, Bridging::Python(b)) => {
                vec![("python".into(), procstat::cpu_time_or_zero(b.pid()))]
            }
        }
    }

    /// CPU time of the broker so far (none when it cannot be read).
    fn broker_cpu(&self) -> Option<Duration> {
        procstat::cpu_time(self.broker_pid?).ok()
    }

    /// Sends `per_stream` more events on every stream (at `rate` events/s over all streams, or
    /// as fast as possible) and measures their delivery. `stall`: how long without progress
    /// counts the missing events as lost.
    pub async fn window(
        &mut self,
        per_stream: u64,
        rate: Option<f64>,
        stall: Duration,
    ) -> anyhow::Result<RunResult> {
        let (lo, hi) = (self.sent, self.sent + per_stream);
        self.sub.expect(lo, hi);
        let cpu0 = self.cpu();
        let broker0 = self.broker_cpu();
        let go = Instant::now();
        let sending = match &self.feed {
            Feed::Sse(source, _) => {
                source.send_until(hi, rate);
                None
            }
            Feed::Raw(raw) => {
                let raw = raw.clone();
                Some(tokio::spawn(
                    async move { raw.send(lo + 1, hi, rate).await },
                ))
            }
        };
        let out = self.sub.wait(stall).await;
        let end = out.complete_at.unwrap_or_else(Instant::now);
        let cpu1 = self.cpu();
        let broker1 = self.broker_cpu();
        if let Some(task) = sending {
            task.abort();
        }
        self.sent = hi;
        let seconds = (end - go).as_secs_f64();
        let us = |ns: Option<u64>| ns.map(|n| n as f64 / 1e3);
        let events = out.expected.max(1) as f64;
        let cpu_split: Vec<(String, f64)> = cpu0
            .iter()
            .zip(&cpu1)
            .map(|((name, a), (_, b))| {
                (
                    name.clone(),
                    b.saturating_sub(*a).as_secs_f64() * 1e6 / events,
                )
            })
            .collect();
        Ok(RunResult {
            kind: self.kind,
            run: 0,
            events: out.expected,
            lost: out.lost,
            duplicates: out.duplicates,
            out_of_order: out.out_of_order,
            seconds,
            events_per_s: out.received as f64 / seconds.max(1e-9),
            p50_us: us(out.latency_quantile(0.5)),
            p99_us: us(out.latency_quantile(0.99)),
            p999_us: us(out.latency_quantile(0.999)),
            max_us: us(out.latency_quantile(1.0)),
            cpu_us_per_event: (!cpu_split.is_empty())
                .then(|| cpu_split.iter().map(|(_, v)| v).sum()),
            cpu_split,
            broker_cpu_us_per_event: broker0
                .zip(broker1)
                .map(|(a, b)| b.saturating_sub(a).as_secs_f64() * 1e6 / events),
            series: out.series,
        })
    }

    /// Streams this contender feeds.
    pub fn streams(&self) -> u32 {
        self.streams
    }
}
