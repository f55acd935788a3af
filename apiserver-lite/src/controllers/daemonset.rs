//! The DaemonSet controller (kube-controller-manager's `daemon` controller): one pod of each DaemonSet
//! on every node it belongs on.
//!
//! DaemonSets, pods and nodes are followed with list-then-watch. A pod change requeues its controller (or,
//! for an orphan, the DaemonSets of its namespace selecting it); a node that appears, goes, or changes its
//! labels or taints requeues every DaemonSet, so a new node gets its pods within milliseconds.
//!
//! A sync claims pods (adopts selected orphans, releases pods no longer selected), groups them by node
//! (`spec.nodeName`, or the node their affinity pins them to), and per node (see [`pods::should_run`]):
//! creates a pod pinned to the node with a required node affinity `metadata.name In [node]` (the scheduler
//! binds it), deletes surplus pods and pods on nodes that are no longer eligible, deletes failed pods (with
//! a per-node backoff of 1 s doubling to 15 min, kube's `failedPodsBackoff`) and succeeded ones. Deletion
//! goes through the REST delete (graceful). With `updateStrategy: RollingUpdate`, pods of an older template
//! (label `controller-revision-hash` / `pod-template-generation`) are replaced node by node within
//! `maxUnavailable` (or surged within `maxSurge`); with `OnDelete` only new pods get the new template.
//! Then the status is written (`observedGeneration` and kube's counters, what `kubectl rollout status`
//! reads). Each template the DaemonSet has had is kept as a ControllerRevision `<ds>-<hash>` (what
//! `kubectl rollout history/undo` read), up to `revisionHistoryLimit` unused ones (see
//! [`super::statefulset::history`]).
//!
//! Like kube's expectations, a DaemonSet is not synced again until the pod view has caught up with the
//! pods it wrote (the store revision of its last write), so a slow watch never makes it create twice.

mod cache;
mod plan;
mod pods;
mod sync;
mod writes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::reflector::Reflector;
use crate::handlers::Api;
use crate::store::Store;
use cache::Cache;
use sync::sync;

/// The component of the controller's events.
const COMPONENT: &str = "daemonset-controller";
const MANAGER: &str = "kube-controller-manager";
/// At most this many pods are created or deleted in one sync (kube's `burstReplicas`).
const BURST: usize = 250;
/// Failed syncs are tried again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// Run the DaemonSet controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut sets = Reflector::new(store.clone(), &cache.ds_prefix);
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let mut nodes = Reflector::new(store.clone(), super::NODES_PREFIX);
    let mut revisions = Reflector::new(store, &cache.revisions_prefix);
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let timer = cache.queue.sleep_for(Instant::now());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = sets.next() => cache.ds_change(change),
            change = pods.next() => cache.pod_change(change),
            change = nodes.next() => cache.node_change(change),
            change = revisions.next() => cache.revision_change(change),
            _ = retry.tick() => {
                let failed = std::mem::take(&mut cache.failed);
                cache.queue.mark_all(failed);
            }
            _ = tokio::time::sleep(timer) => {}
        }
        pods.drain(BATCH, |change| cache.pod_change(change));
        nodes.drain(BATCH, |change| cache.node_change(change));
        revisions.drain(BATCH, |change| cache.revision_change(change));
        sets.drain(BATCH, |change| cache.ds_change(change));
        if cache.listed.contains(&false) {
            continue;
        }
        let now = Instant::now();
        let seen = pods.revision();
        // A DaemonSet waiting for the pod view stays dirty: synced again once the view has caught up.
        for key in cache.queue.take_ready(now, |rev| *rev > seen) {
            match sync(&api, &mut cache, &key).await {
                Ok(Some(rev)) if rev > seen => {
                    cache.queue.expect(key, rev);
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(daemonset = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync daemon set; will retry");
                    cache.failed.insert(key);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
