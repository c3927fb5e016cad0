//! Loads the resources and follows their directory. Loading, validating and planning thousands of
//! assets takes a while, and ingest runs on one thread that also serves gRPC and reads every
//! stream: so that work runs on a blocking-pool thread, and only applying the plan (starting and
//! stopping readers) runs on the service's thread.

use std::collections::HashSet;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::error::Error;
use crate::resources::{self, LastGood, Resources};
use crate::secret_access::{self, AccessFile};
use crate::status::Status;
use crate::{routing, supervisor, watch};

/// Resources as loaded, with the streams this replica reads for them.
pub struct Loaded {
    /// The resources.
    pub resources: Arc<Resources>,
    /// The streams to read; `None` when the resources did not change (nothing to apply).
    pub plans: Option<supervisor::Plans>,
}

/// What the resources directory gave at start, and its files' last clean versions.
pub struct Watched {
    /// The resources loaded at start.
    pub res: Arc<Resources>,
    /// The last version of each file that parsed, served while the file is damaged.
    pub last_good: Arc<LastGood>,
}

/// Loads the resources (and the secret allow-list, which refuses endpoints) and plans their
/// streams off the service's thread; the status follows them. Equal to `before`, they are not
/// planned again. A damaged file is served as its version in `last_good`.
pub async fn load(
    settings: &Settings,
    status: &Arc<Status>,
    access: &Arc<AccessFile>,
    last_good: &Arc<LastGood>,
    before: Option<Arc<Resources>>,
) -> Result<Loaded, Error> {
    let path = settings.flags.resources.clone();
    let (settings, status, access) = (settings.clone(), status.clone(), access.clone());
    let last_good = last_good.clone();
    tokio::task::spawn_blocking(move || {
        load_blocking(&settings, &status, &access, &last_good, before)
    })
    .await
    .map_err(|e| Error::ResourcesDir {
        path,
        reason: format!("loading stopped: {e}"),
    })?
}

fn load_blocking(
    settings: &Settings,
    status: &Status,
    access: &AccessFile,
    last_good: &LastGood,
    before: Option<Arc<Resources>>,
) -> Result<Loaded, Error> {
    let max = usize::try_from(settings.flags.max_resource_file_bytes).unwrap_or(usize::MAX);
    let res = resources::load_dir_limited(&settings.flags.resources, max, last_good)?;
    Ok(prepare_blocking(settings, status, access, before, res))
}

/// Prepares resources from any source as a file reload is: the secret allow-list applied, then
/// planned off the service's thread unless equal to `before`.
pub async fn prepare(
    settings: &Settings,
    status: &Arc<Status>,
    access: &Arc<AccessFile>,
    before: Option<Arc<Resources>>,
    res: Resources,
) -> Result<Loaded, Error> {
    let (settings, status, access) = (settings.clone(), status.clone(), access.clone());
    tokio::task::spawn_blocking(move || prepare_blocking(&settings, &status, &access, before, res))
        .await
        .map_err(|e| Error::Config(format!("planning the resources stopped: {e}")))
}

fn prepare_blocking(
    settings: &Settings,
    status: &Status,
    access: &AccessFile,
    before: Option<Arc<Resources>>,
    mut res: Resources,
) -> Loaded {
    if let Some(access) = access.refresh() {
        secret_access::enforce(&access, &mut res);
    }
    if let Some(b) = before.as_ref().filter(|b| ***b == res) {
        return Loaded {
            resources: b.clone(),
            plans: None,
        };
    }
    let plans = plan_streams(settings, &res, status, before.as_deref());
    Loaded {
        resources: Arc::new(res),
        plans: Some(plans),
    }
}

/// The streams this replica reads for `res` (and the keys of every replica's), with the status
/// following them; logs the problems that are new since `before`.
fn plan_streams(
    settings: &Settings,
    res: &Resources,
    status: &Status,
    before: Option<&Resources>,
) -> supervisor::Plans {
    log_new_problems(res, before);
    let plans = routing::plan(res);
    let keys = plans.iter().map(|p| p.key.clone()).collect();
    let plans = settings.shard.select(plans);
    tracing::info!(
        dir = %settings.flags.resources.display(),
        devices = res.devices.len(),
        assets = res.assets.len(),
        streams = plans.len(),
        errors = res.errors.len(),
        "resources loaded"
    );
    status.reconcile(&plans, res);
    supervisor::Plans { owned: plans, keys }
}

/// Logs each resource, endpoint, dataset and event problem once (a set: a reload of thousands
/// of errors compared them pairwise).
fn log_new_problems(res: &Resources, before: Option<&Resources>) {
    let old: HashSet<_> = before
        .map(Resources::problems)
        .unwrap_or_default()
        .into_iter()
        .collect();
    for e in res.problems().iter().filter(|e| !old.contains(*e)) {
        tracing::warn!(resource = %e.resource, file = %e.file, error = %e.message, "resource cannot be served");
    }
}

/// Reloads the resources whenever their directory (or the secret access file) changes and
/// applies the difference: changed streams reconnect, removed ones close, new ones start, the
/// rest are left alone. A directory that cannot be read keeps the current streams running.
pub async fn follow_resources(
    settings: Settings,
    mut streams: supervisor::Supervisor,
    status: Arc<Status>,
    access: Arc<AccessFile>,
    watched: Watched,
    token: CancellationToken,
) {
    let Watched {
        res: mut current,
        last_good,
    } = watched;
    let watching = watch::WatchSettings {
        debounce: settings.flags.reload_debounce,
        rescan: settings.flags.rescan_interval,
    };
    let mut dir = watch::DirWatch::new(&settings.flags.resources, watching);
    // The resources' rescan re-reads the access file too.
    let mut access_watch = access.path().map(|p| {
        watch::DirWatch::file(
            p,
            watch::WatchSettings {
                rescan: std::time::Duration::ZERO,
                ..watching
            },
        )
    });
    loop {
        let next = tokio::select! {
            r = dir.next(&token) => r,
            r = next_change(access_watch.as_mut(), &token) => r,
        };
        if next.is_none() {
            return;
        }
        // Shutdown need not wait for a long load (its result is of no use any more).
        let loaded = tokio::select! {
            r = load(&settings, &status, &access, &last_good, Some(current.clone())) => r,
            _ = token.cancelled() => return,
        };
        apply(&mut streams, loaded, &mut current).await;
    }
}

/// Applies a (re)load to the running streams, whatever its source: changed streams reconnect,
/// removed ones close, new ones start, the rest are left alone; a failed load keeps them all.
pub async fn apply(
    streams: &mut supervisor::Supervisor,
    loaded: Result<Loaded, Error>,
    current: &mut Arc<Resources>,
) {
    let (resources, plans) = match loaded {
        Ok(Loaded {
            resources,
            plans: Some(plans),
        }) => (resources, plans),
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reload the resources; the current streams keep running");
            return;
        }
    };
    let applied = streams.apply(plans).await;
    tracing::info!(
        started = applied.started.len(),
        restarted = applied.restarted.len(),
        stopped = applied.stopped.len(),
        unchanged = applied.unchanged,
        "resources reloaded"
    );
    *current = resources;
}

/// The next change `watch` reports; without a watch, none until shutdown.
async fn next_change(watch: Option<&mut watch::DirWatch>, token: &CancellationToken) -> Option<()> {
    match watch {
        Some(w) => w.next(token).await,
        None => {
            token.cancelled().await;
            None
        }
    }
}
