//! The Job controller (kube-controller-manager's job controller, and its ttl-after-finished controller):
//! a Job keeps `parallelism` pods active (never more than the completions still missing), counts the pods
//! that succeed or fail, replaces failed pods after an exponential back-off, and finishes Complete or
//! Failed (`backoffLimit`, `activeDeadlineSeconds`).
//!
//! Pods carry the finalizer `batch.kubernetes.io/job-tracking` until they are counted, so a pod deleted
//! before it finished is still counted (as failed). Counting follows kube's two steps: a finished pod's
//! uid first goes to `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves to
//! `succeeded`/`failed`. Like kube 1.32, the interim conditions `SuccessCriteriaMet`/`FailureTarget` come
//! first and `Complete`/`Failed` only once no pod is left terminating.
//!
//! Indexed Jobs (`completionMode: Indexed`) give each pod a completion index and count one success per
//! index (`status.completedIndexes`), with per-index back-off limits (`backoffLimitPerIndex`,
//! `maxFailedIndexes`, `status.failedIndexes`) and a `successPolicy`; a `podFailurePolicy` decides per
//! failed pod whether its failure fails the Job, its index, counts or is ignored.
//!
//! Jobs and pods are followed with list-then-watch; a sync is not repeated before the views have caught
//! up with the writes of the previous one (kube's expectations), so a lagging watch never makes it create
//! pods twice or count a pod twice.

mod backoff;
mod cache;
mod failure_policy;
mod indexed;
mod indexes;
mod pods;
mod status;
mod sync;
mod ttl;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::owners::Key;
use super::reflector::Reflector;
use crate::handlers::Api;
use crate::store::Store;
use cache::{Cache, Expect};
use sync::sync;
use writes::release_orphan;

pub use backoff::{Settings, parse_backoff, set_pod_failure_backoff};
pub use status::finished;

/// The component of the controller's events.
const COMPONENT: &str = "job-controller";
const MANAGER: &str = "kube-controller-manager";
/// At most this many pods are created or deleted in one sync (kube's `MaxPodCreateDeletePerSync`).
const BURST: usize = 500;
/// Failed syncs are tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// Run the Job controller until `shutdown` turns true, with the back-off of [`set_pod_failure_backoff`].
pub async fn run(
    store: Arc<dyn Store>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_with(store, Settings::current(), shutdown).await
}

/// [`run`] with explicit back-off settings.
pub async fn run_with(
    store: Arc<dyn Store>,
    settings: Settings,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut jobs = Reflector::new(store.clone(), &cache.job_prefix);
    let mut pods = Reflector::new(store, super::PODS_PREFIX);
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let timer = cache.queue.sleep_for(Instant::now());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = jobs.next() => cache.job_change(change),
            change = pods.next() => cache.pod_change(change),
            _ = retry.tick() => {
                let failed = std::mem::take(&mut cache.failed);
                cache.queue.mark_all(failed);
            }
            _ = tokio::time::sleep(timer) => {}
        }
        pods.drain(BATCH, |change| cache.pod_change(change));
        jobs.drain(BATCH, |change| cache.job_change(change));
        if !(cache.jobs_listed && cache.pods_listed) {
            continue;
        }
        let now = Instant::now();
        let (seen_pods, seen_jobs) = (pods.revision(), jobs.revision());
        let pending = |e: &Expect| e.pods > seen_pods || e.jobs > seen_jobs;
        // A Job waiting for the views stays dirty: synced again once they have caught up.
        for key in cache.queue.take_ready(now, pending) {
            let mut expect = Expect::default();
            let result = sync(&api, settings, &mut cache, &key, &mut expect).await;
            if pending(&expect) {
                cache.queue.expect(key.clone(), expect);
            }
            if let Err(err) = result {
                tracing::warn!(job = %format!("{}/{}", key.0, key.1), error = %err.message,
                    "failed to sync job; will retry");
                cache.failed.insert(key);
            }
        }
        let orphans: Vec<Key> = std::mem::take(&mut cache.orphans).into_iter().collect();
        for key in orphans {
            if let Err(err) = release_orphan(&api, &cache, &key).await {
                tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %err.message,
                    "failed to remove the job tracking finalizer; will retry");
                cache.orphans.insert(key);
            }
        }
    }
    Ok(())
}
