//! The scheduler's side of volume binding: following claims, volumes and classes, and the pods that wait
//! for their `WaitForFirstConsumer` claims to be provisioned on the node chosen for them.
//!
//! Like kube-scheduler (which assumes the pod, then blocks its binding cycle in VolumeBinding's PreBind)
//! a waiting pod stays *assumed* on its node, so its requests stay counted there and no other pod takes
//! the room the pod will need once its volumes pin it to that node. Unlike kube, skiff does not bind the
//! pod from the waiting state: once every claim is bound it drops the assumption and schedules the pod again
//! in the same pass, now with bound claims whose volumes' node affinity decides the node. No event is
//! recorded while waiting; after [`BIND_TIMEOUT`] (kube's `bindTimeoutSeconds`) the pod is reported and
//! tried again.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::volumes::{self, Claim, Class, Volume};
use super::{Scheduler, binding, prebind};
use crate::controllers::reflector::{Change, Reflector};
use crate::store::{KeyValue, Revision, Store};

/// How long a pod waits for its claims to be bound before it is placed again (kube's default, 600 s).
pub const BIND_TIMEOUT: Duration = Duration::from_secs(600);
/// The condition reason of a pod whose placement failed for another cause than not fitting.
const SCHEDULER_ERROR: &str = "SchedulerError";
const TIMED_OUT: &str =
    "running PreBind plugin \"VolumeBinding\": binding volumes: context deadline exceeded";

/// A pod placed on `node` that waits for its delayed claims to be bound.
pub(super) struct Waiting {
    node: String,
    /// Each claim (`namespace/name`) with the revision from which its view carries the selected node;
    /// `None` while that write is in flight.
    claims: Vec<(String, Option<Revision>)>,
    deadline: Instant,
}

/// The storage kinds the scheduler follows.
#[derive(Clone, Copy, Debug)]
pub(super) enum StorageKind {
    Claims = 0,
    Volumes = 1,
    Classes = 2,
}

/// The list-then-watch of claims, volumes and classes.
pub(super) struct StorageReflectors {
    claims: Reflector,
    volumes: Reflector,
    classes: Reflector,
}

impl StorageReflectors {
    pub fn new(store: &std::sync::Arc<dyn Store>) -> StorageReflectors {
        StorageReflectors {
            claims: Reflector::new(store.clone(), volumes::CLAIMS_PREFIX),
            volumes: Reflector::new(store.clone(), volumes::VOLUMES_PREFIX),
            classes: Reflector::new(store.clone(), volumes::CLASSES_PREFIX),
        }
    }

    /// The first listing: claims before what they refer to, so no claim names a volume or class that its
    /// view is too old to know.
    pub async fn list(&mut self, scheduler: &mut Scheduler) {
        let change = self.claims.next().await;
        scheduler.on_storage_change(StorageKind::Claims, change);
        let change = self.classes.next().await;
        scheduler.on_storage_change(StorageKind::Classes, change);
        let change = self.volumes.next().await;
        scheduler.on_storage_change(StorageKind::Volumes, change);
    }

    /// The next change of any of them. Cancel-safe.
    pub async fn next(&mut self) -> (StorageKind, Change) {
        tokio::select! {
            change = self.claims.next() => (StorageKind::Claims, change),
            change = self.volumes.next() => (StorageKind::Volumes, change),
            change = self.classes.next() => (StorageKind::Classes, change),
        }
    }

    /// Apply every change already delivered, so that a decision about a newer pod or claim does not see
    /// older storage. Decisions wait for the scheduling pass that follows.
    pub fn drain(&mut self, scheduler: &mut Scheduler) {
        loop {
            let mut any = false;
            for (kind, reflector) in [
                (StorageKind::Volumes, &mut self.volumes),
                (StorageKind::Classes, &mut self.classes),
                (StorageKind::Claims, &mut self.claims),
            ] {
                while let Some(change) = reflector.try_next() {
                    scheduler.on_storage_change(kind, change);
                    any = true;
                }
            }
            if !any {
                return;
            }
        }
    }
}

/// Sleep until `deadline`, or forever without one.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// What to do with a waiting pod.
enum Verdict {
    Wait,
    /// Every claim is bound, or what the pod waited for changed: schedule it again now.
    Again,
    /// The pod no longer needs a node.
    Gone,
    /// Report this error and try again later.
    Failed(String),
}

fn name_of(key: &str, prefix: &str) -> String {
    key.strip_prefix(prefix).unwrap_or(key).to_string()
}

impl Scheduler {
    /// Update the storage view and re-examine the pods that use a claim the change may concern.
    pub(super) fn on_storage_change(&mut self, kind: StorageKind, change: Change) {
        let touched = match change {
            Change::Reset(items) => {
                self.reset_storage(kind, &items);
                self.storage_synced[kind as usize] = true;
                None
            }
            Change::Put(kv) => Some(self.put_storage(kind, &kv)),
            Change::Delete(kv) => Some(self.delete_storage(kind, &kv.key)),
        };
        self.requeue_claim_users(touched.as_ref());
    }

    fn reset_storage(&mut self, kind: StorageKind, items: &[KeyValue]) {
        let cache = &mut self.volumes;
        match kind {
            StorageKind::Claims => cache.claims = items.iter().filter_map(Claim::parse).collect(),
            StorageKind::Volumes => {
                cache.volumes = items.iter().filter_map(Volume::parse).collect()
            }
            StorageKind::Classes => cache.classes = items.iter().filter_map(Class::parse).collect(),
        }
    }

    /// Store one object; the claims (`namespace/name`) whose users may now decide differently.
    fn put_storage(&mut self, kind: StorageKind, kv: &KeyValue) -> HashSet<String> {
        let parsed = match kind {
            StorageKind::Claims => Claim::parse(kv).map(|(key, claim)| {
                self.volumes.claims.insert(key.clone(), claim);
                HashSet::from([key])
            }),
            StorageKind::Volumes => Volume::parse(kv).map(|(name, volume)| {
                // The claims of the old version and of the new one.
                let mut touched = self.delete_storage(kind, &kv.key);
                touched.extend(volume.claim.clone());
                self.volumes.volumes.insert(name, volume);
                touched
            }),
            StorageKind::Classes => Class::parse(kv).map(|(name, class)| {
                self.volumes.classes.insert(name.clone(), class);
                self.claims_where(|c| c.class == name)
            }),
        };
        parsed.unwrap_or_else(|| {
            tracing::warn!(key = %kv.key, "cannot parse stored object; ignoring it");
            self.delete_storage(kind, &kv.key)
        })
    }

    /// Forget one object; the claims whose users may now decide differently.
    fn delete_storage(&mut self, kind: StorageKind, key: &str) -> HashSet<String> {
        match kind {
            StorageKind::Claims => {
                let key = name_of(key, volumes::CLAIMS_PREFIX);
                self.volumes.claims.remove(&key);
                HashSet::from([key])
            }
            StorageKind::Volumes => {
                let name = name_of(key, volumes::VOLUMES_PREFIX);
                let old = self.volumes.volumes.remove(&name);
                let mut touched = self.claims_where(|c| c.volume_name == name);
                touched.extend(old.and_then(|v| v.claim));
                touched
            }
            StorageKind::Classes => {
                let name = name_of(key, volumes::CLASSES_PREFIX);
                self.volumes.classes.remove(&name);
                self.claims_where(|c| c.class == name)
            }
        }
    }

    fn claims_where(&self, f: impl Fn(&Claim) -> bool) -> HashSet<String> {
        let claims = self.volumes.claims.iter();
        claims
            .filter(|(_, c)| f(c))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Re-examine the waiting pods and queue the unschedulable (or backed-off) ones that use one of `claims`
    /// (`None`: any claim).
    fn requeue_claim_users(&mut self, claims: Option<&HashSet<String>>) {
        let uses = |key: &String| {
            self.pods.get(key).is_some_and(|p| {
                !p.claims.is_empty()
                    && claims.is_none_or(|set| p.claims.iter().any(|c| set.contains(&c.key)))
            })
        };
        let waiting: Vec<String> = self.waiting.keys().filter(|k| uses(k)).cloned().collect();
        let blocked: Vec<String> = self
            .unschedulable
            .keys()
            .chain(self.backoff.iter())
            .filter(|k| uses(k))
            .cloned()
            .collect();
        for key in waiting {
            self.check_waiting(&key);
        }
        for key in blocked {
            self.backoff.remove(&key);
            self.enqueue(&key);
        }
    }

    /// The pod at `key` goes to `node` once its delayed claims are bound: write the node on those that do
    /// not carry it yet (`None` in `claims`) and wait. The caller has assumed the pod on `node`.
    pub(super) fn start_waiting(
        &mut self,
        key: String,
        node: String,
        claims: Vec<(String, Option<Revision>)>,
    ) {
        let to_write: Vec<String> = claims
            .iter()
            .filter(|(_, after)| after.is_none())
            .map(|(claim, _)| claim.clone())
            .collect();
        tracing::info!(pod = %key, node = %node, "waiting for volumes to be bound");
        self.waiting.insert(
            key.clone(),
            Waiting {
                node: node.clone(),
                claims,
                deadline: Instant::now() + self.bind_timeout,
            },
        );
        if !to_write.is_empty() {
            let (api, outcomes) = (self.api.clone(), self.outcomes.clone());
            tokio::spawn(async move {
                let _ = outcomes.send(prebind::select_node(api, key, node, to_write).await);
            });
        }
    }

    /// The selected node is on the claims: from `claims`' revisions on, a claim without it means the
    /// provisioner gave up.
    pub(super) fn on_volumes_requested(&mut self, key: &str, claims: Vec<(String, Revision)>) {
        let Some(waiting) = self.waiting.get_mut(key) else {
            return;
        };
        for (claim, revision) in claims {
            if let Some(slot) = waiting.claims.iter_mut().find(|(c, _)| *c == claim) {
                slot.1 = Some(revision);
            }
        }
        self.check_waiting(key);
    }

    /// Writing the selected node failed: place the pod again at the next retry.
    pub(super) fn on_volumes_failed(&mut self, key: String, error: &str) {
        tracing::warn!(pod = %key, %error, "selecting the node of the pod's claims failed; will retry");
        if self.waiting.contains_key(&key) {
            self.stop_waiting(&key);
            self.backoff.insert(key);
        }
    }

    /// Re-examine every waiting pod (after a node or pod listing change).
    pub(super) fn check_all_waiting(&mut self) {
        let keys: Vec<String> = self.waiting.keys().cloned().collect();
        for key in keys {
            self.check_waiting(&key);
        }
    }

    pub(super) fn check_waiting(&mut self, key: &str) {
        match self.verdict(key) {
            None | Some(Verdict::Wait) => {}
            Some(Verdict::Again) => {
                self.stop_waiting(key);
                self.enqueue(key);
            }
            Some(Verdict::Gone) => self.stop_waiting(key),
            Some(Verdict::Failed(message)) => {
                self.stop_waiting(key);
                self.fail(key, message);
            }
        }
    }

    fn verdict(&self, key: &str) -> Option<Verdict> {
        let waiting = self.waiting.get(key)?;
        if self.pods.get(key).is_none_or(|p| !p.needs_scheduling()) {
            return Some(Verdict::Gone);
        }
        if !self.nodes.contains_key(&waiting.node) {
            return Some(Verdict::Again);
        }
        let mut all_bound = true;
        for (claim_key, after) in &waiting.claims {
            let Some(claim) = self.volumes.claims.get(claim_key) else {
                return Some(Verdict::Again);
            };
            if claim.deleting {
                return Some(Verdict::Again);
            }
            if claim.bound() {
                continue;
            }
            all_bound = false;
            // Judge the annotation only on a view that includes the write.
            if after.is_none_or(|after| claim.revision < after) {
                continue;
            }
            if claim.selected_node.as_deref() != Some(waiting.node.as_str()) {
                let name = claim_key
                    .split_once('/')
                    .map_or(claim_key.as_str(), |(_, n)| n);
                return Some(Verdict::Failed(format!(
                    "running PreBind plugin \"VolumeBinding\": binding volumes: provisioning failed for PVC {name:?}"
                )));
            }
        }
        Some(if all_bound {
            Verdict::Again
        } else {
            Verdict::Wait
        })
    }

    fn stop_waiting(&mut self, key: &str) {
        self.waiting.remove(key);
        self.assumed.remove(key);
    }

    /// Report a failed placement (`FailedScheduling`, reason `SchedulerError`) and retry at the next tick.
    fn fail(&mut self, key: &str, message: String) {
        tracing::warn!(pod = %key, %message, "placing the pod failed");
        self.unschedulable.remove(key);
        self.backoff.insert(key.to_string());
        if let Some(entry) = self.pods.get(key) {
            tokio::spawn(binding::report_failure(
                self.store.clone(),
                key.to_string(),
                entry.revision,
                entry.value.clone(),
                SCHEDULER_ERROR,
                message,
            ));
        }
    }

    /// When the first waiting pod times out.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|w| w.deadline).min()
    }

    /// Give up on the pods whose claims were not bound in time.
    pub(super) fn expire_waiting(&mut self) {
        let now = Instant::now();
        let expired: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.stop_waiting(&key);
            self.fail(&key, TIMED_OUT.to_string());
        }
    }
}
