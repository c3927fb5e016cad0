//! Delivery under faults, end to end: a numbered SSE source (honouring `Last-Event-ID`), the
//! three real binaries and a real, persistent Mosquitto; a subscriber with a persistent session
//! counts every numbered event on the broker. Kill -9 of the publisher, kill -9 of the schema
//! service, a broker outage of several seconds (ingest's resident memory sampled meanwhile) and
//! a source that drops its connection every few events: each test counts lost and duplicated
//! events, asserts none lost, and checks that duplicates carry the same CloudEvents `id`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::numbered::{NumberedSource, Numbering, number_of, resources_dir};
use sse_e2e::procs::Service;
use sse_e2e::stack::{Pipeline, PipelineArgs};

const TOPIC: &str = "delivery/numbers";

/// The system under test.
struct Rig {
    broker: Mosquitto,
    source: NumberedSource,
    publisher: Service,
    schema: Service,
    ingest: Service,
    sub: Subscriber,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn start(name: &str, numbering: Numbering) -> Result<Self> {
        let broker = Mosquitto::start_persistent().await?;
        let sub =
            Subscriber::connect_persistent(broker.port, TOPIC, &format!("delivery-sub-{name}"))
                .await?;
        let source = NumberedSource::start(numbering).await?;
        let dir = resources_dir(&source.base_url(), TOPIC)?;
        let res = dir.path().join("resources");
        let s = |x: &str| x.to_string();
        let Pipeline {
            publisher,
            schema,
            ingest,
        } = Pipeline::start(PipelineArgs {
            mqtt_url: broker.url(),
            data_dir: dir.path().join("schemas").display().to_string(),
            resources: res.display().to_string(),
            publisher: vec![s("--client-id"), format!("delivery-pub-{name}")],
            ingest: vec![
                s("--checkpoint-store"),
                dir.path().join("checkpoints.json").display().to_string(),
            ],
            env: None,
        })
        .await?;
        Ok(Self {
            broker,
            source,
            publisher,
            schema,
            ingest,
            sub,
            _dir: dir,
        })
    }

    /// Waits until at least `n` distinct numbered events reached the broker.
    async fn wait_distinct(&self, n: usize) -> Result<()> {
        self.sub
            .wait_until(&format!("{n} distinct events on the broker"), |m| {
                tally(m).by_number.len() >= n
            })
            .await
            .with_context(|| self.logs())?;
        Ok(())
    }

    fn logs(&self) -> String {
        let tail = |s: &Service| {
            let t = s.log_text();
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- publisher ---\n{}\n--- schema ---\n{}\n--- ingest ---\n{}\n--- source requests (Last-Event-ID) ---\n{:?}",
            tail(&self.publisher),
            tail(&self.schema),
            tail(&self.ingest),
            self.source.resumed_from()
        )
    }

    /// Waits for every event (up to the deadline), then returns the count.
    async fn finish(&self, what: &str) -> Result<Tally> {
        let total = self.source.numbering.total as usize;
        let waited = self.wait_distinct(total).await;
        let t = tally(&self.sub.all());
        let lost = t.lost(self.source.numbering.total);
        eprintln!(
            "{what}: {} events, {} received messages, lost {}, duplicated {}, source connections {}",
            total,
            t.messages,
            lost.len(),
            t.duplicates(),
            self.source.resumed_from().len()
        );
        if let Err(e) = waited {
            anyhow::bail!(
                "{what}: lost {} events (first: {:?}): {e:#}",
                lost.len(),
                &lost[..lost.len().min(20)]
            );
        }
        assert!(lost.is_empty());
        t.check_duplicate_ids()?;
        Ok(t)
    }
}

/// What the subscriber saw, per event number: every CloudEvents `id` it arrived with.
struct Tally {
    by_number: BTreeMap<u64, Vec<String>>,
    messages: usize,
}

fn tally(msgs: &[Received]) -> Tally {
    let mut by_number: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut messages = 0;
    for m in msgs.iter().filter(|m| m.topic == TOPIC) {
        if let Some(n) = number_of(&m.payload) {
            messages += 1;
            by_number
                .entry(n)
                .or_default()
                .push(m.user("id").unwrap_or_default().to_string());
        }
    }
    Tally {
        by_number,
        messages,
    }
}

impl Tally {
    fn lost(&self, total: u64) -> Vec<u64> {
        (1..=total)
            .filter(|n| !self.by_number.contains_key(n))
            .collect()
    }

    fn duplicates(&self) -> usize {
        self.by_number.values().map(|ids| ids.len() - 1).sum()
    }

    /// A duplicate is a redelivery of the same event: the same CloudEvents `id`.
    fn check_duplicate_ids(&self) -> Result<()> {
        for (n, ids) in &self.by_number {
            anyhow::ensure!(
                !ids[0].is_empty() && ids.iter().all(|i| i == &ids[0]),
                "event {n} arrived with different ids: {ids:?}"
            );
        }
        Ok(())
    }
}

fn numbering(total: u64) -> Numbering {
    Numbering {
        total,
        interval: Duration::from_millis(10),
        drop_every: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_killed_mid_stream_loses_nothing() -> Result<()> {
    let mut rig = Rig::start("kill-publisher", numbering(400)).await?;
    rig.wait_distinct(60).await?;
    rig.publisher.kill().await?;
    rig.publisher.restart().await?;
    rig.finish("kill -9 publisher").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_killed_mid_stream_loses_nothing() -> Result<()> {
    let mut rig = Rig::start("kill-schema", numbering(400)).await?;
    rig.wait_distinct(60).await?;
    rig.schema.kill().await?;
    rig.schema.restart().await?;
    rig.finish("kill -9 schema").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing_and_ingest_memory_stays_bounded() -> Result<()> {
    // Fast enough that, without backpressure, ingest would pile up events while the broker is
    // down; the source keeps producing for the whole outage.
    let mut rig = Rig::start(
        "broker-outage",
        Numbering {
            total: 4000,
            interval: Duration::from_millis(1),
            drop_every: None,
        },
    )
    .await?;
    rig.wait_distinct(200).await?;
    rig.broker.terminate().await?;
    let before = rig.ingest.rss_kib().context("ingest rss")?;
    // The outage itself: several seconds without a broker, sampling ingest's memory.
    let mut peak = before;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        peak = peak.max(rig.ingest.rss_kib().context("ingest rss")?);
    }
    let received_during = tally(&rig.sub.all()).by_number.len();
    rig.broker.restart().await?;
    let t = rig.finish("broker outage").await?;
    eprintln!(
        "broker outage: ingest VmRSS {before} KiB at the stop, peak {peak} KiB during 5 s down \
         (+{} KiB); {received_during} of 4000 delivered before the restart, {} messages in all",
        peak.saturating_sub(before),
        t.messages
    );
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "ingest grew by {} KiB while the broker was down",
        peak - before
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_dropping_every_25_events_loses_and_duplicates_nothing() -> Result<()> {
    let rig = Rig::start(
        "source-drops",
        Numbering {
            total: 300,
            interval: Duration::from_millis(5),
            drop_every: Some(25),
        },
    )
    .await?;
    let t = rig.finish("source drops every 25").await?;
    assert!(
        rig.source.resumed_from().len() >= 12,
        "{:?}",
        rig.source.resumed_from()
    );
    assert_eq!(t.duplicates(), 0, "no fault downstream: no duplicates");
    Ok(())
}
