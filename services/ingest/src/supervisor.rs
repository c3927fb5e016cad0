//! Keeps one reader running per planned stream and applies a new plan without a restart: changed
//! streams reconnect (resuming from their last event ID), removed ones close, new ones start, and
//! untouched ones are not disturbed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checkpoint::Checkpoints;
use crate::event::RoutedEvent;
use crate::routing::StreamPlan;
use crate::status::Status;
use crate::streams::{Resume, StreamSettings, StreamTask};

/// What one apply did, by stream key.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Streams started.
    pub started: Vec<String>,
    /// Streams restarted because their plan changed.
    pub restarted: Vec<String>,
    /// Streams stopped because they are no longer planned.
    pub stopped: Vec<String>,
    /// Streams left running as they were.
    pub unchanged: usize,
}

impl Applied {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.restarted.is_empty() && self.stopped.is_empty()
    }
}

/// The streams of one plan: the ones this replica reads, and the keys of every stream planned
/// (every replica's), whose checkpoints are kept.
#[derive(Debug, Default)]
pub struct Plans {
    /// The streams this replica reads.
    pub owned: Vec<StreamPlan>,
    /// The keys of every planned stream.
    pub keys: HashSet<String>,
}

struct Running {
    plan: Arc<StreamPlan>,
    token: CancellationToken,
    handle: JoinHandle<()>,
    resume: Resume,
}

/// The running stream readers.
pub struct Supervisor {
    settings: StreamSettings,
    status: Arc<Status>,
    out: mpsc::Sender<RoutedEvent>,
    tracker: TaskTracker,
    token: CancellationToken,
    running: HashMap<String, Running>,
    checkpoints: Arc<Checkpoints>,
}

impl Supervisor {
    /// A supervisor starting readers under `tracker`, stopped by `token`, sending to `out`.
    pub fn new(
        settings: StreamSettings,
        status: Arc<Status>,
        out: mpsc::Sender<RoutedEvent>,
        tracker: TaskTracker,
        token: CancellationToken,
        checkpoints: Arc<Checkpoints>,
    ) -> Self {
        Self {
            settings,
            status,
            out,
            tracker,
            token,
            running: HashMap::new(),
            checkpoints,
        }
    }

    /// Keys of the running readers.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.running.keys().cloned().collect();
        k.sort();
        k
    }

    /// Makes the running readers match `plans`; the checkpoints learn every planned key first,
    /// so no stream starts while its record is being dropped.
    pub async fn apply(&mut self, plans: Plans) -> Applied {
        self.checkpoints.planned(plans.keys);
        let mut applied = Applied::default();
        let mut wanted: HashMap<String, StreamPlan> = plans
            .owned
            .into_iter()
            .map(|p| (p.key.clone(), p))
            .collect();
        let mut gone: Vec<String> = self
            .running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        gone.sort();
        for key in gone {
            if let Some(r) = self.running.remove(&key) {
                stop(r).await;
                tracing::info!(stream = %key, "stream no longer in the resources: closed");
                applied.stopped.push(key);
            }
        }
        let mut keys: Vec<String> = wanted.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let Some(plan) = wanted.remove(&key) else {
                continue;
            };
            let resume = match self.running.remove(&key) {
                Some(r) if *r.plan == plan => {
                    self.running.insert(key, r);
                    applied.unchanged += 1;
                    continue;
                }
                Some(r) => {
                    let resume = r.resume.clone();
                    stop(r).await;
                    tracing::info!(stream = %key, routes = ?plan.subjects(), "stream resources changed: reconnecting");
                    applied.restarted.push(key.clone());
                    resume
                }
                None => {
                    let (progress, from) = self.checkpoints.resume(&key);
                    tracing::info!(stream = %key, routes = ?plan.subjects(), resume_after = %from, "reading stream");
                    applied.started.push(key.clone());
                    Resume::from_last_event_id(from).with_progress(progress)
                }
            };
            self.start(plan, resume);
        }
        applied
    }

    fn start(&mut self, plan: StreamPlan, resume: Resume) {
        let plan = Arc::new(plan);
        let token = self.token.child_token();
        let task = StreamTask::new(
            plan.clone(),
            self.settings.clone(),
            self.status.clone(),
            self.out.clone(),
        )
        .resuming(resume.clone());
        let handle = self.tracker.spawn(task.run(token.clone()));
        self.running.insert(
            plan.key.clone(),
            Running {
                plan,
                token,
                handle,
                resume,
            },
        );
    }
}

/// Cancels a reader and waits until it has stopped (it stops promptly: every wait in it also
/// waits on its token).
async fn stop(r: Running) {
    r.token.cancel();
    if let Err(e) = r.handle.await {
        tracing::warn!(error = %e, "stream reader ended abnormally");
    }
}
