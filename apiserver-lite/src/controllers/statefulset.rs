//! The StatefulSet controller (kube-controller-manager's): every StatefulSet keeps pods
//! `<set>-<ordinal>` for the ordinals `[spec.ordinals.start, start + spec.replicas)`, each with a stable
//! hostname and the subdomain `spec.serviceName`, in the order `podManagementPolicy` asks for, and rolls
//! template changes out from the highest ordinal down to the partition (see [`plan`]). Each pod's
//! claims `<template>-<set>-<ordinal>` are made before it from `volumeClaimTemplates` and owned as the
//! `persistentVolumeClaimRetentionPolicy` says (see [`claims`]).
//!
//! StatefulSets, pods and claims are followed with list-then-watch; a pod change requeues its
//! controller (and, for an orphan, the sets of its namespace whose selector picks it), a claim change
//! the set it belongs to. Like the ReplicaSet controller, a set is not synced again until the pod view
//! has caught up with its last pod write.
//!
//! Revisions: a revision is `<set>-<hash of the template>`, kept on the pods as
//! `controller-revision-hash`, in `status.currentRevision` / `updateRevision` and as a ControllerRevision
//! of that name (see [`history`], which the DaemonSet controller shares). A pod below the partition that
//! is deleted comes back from the current revision's template, read from its ControllerRevision (from
//! the update revision's when that is gone).

mod cache;
mod claims;
mod control;
pub(in crate::controllers) mod history;
mod plan;
mod pods;
mod status;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::owners::{self, Claim, Key, Selector, Stored, int_at, str_at};
use super::reflector::Reflector;
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::{Revision, Store};
use cache::Cache;
use claims::PodRef;
use plan::Action;

/// The component of the controller's events and its field manager.
const COMPONENT: &str = "statefulset-controller";
const MANAGER: &str = "kube-controller-manager";
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// Run the StatefulSet controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache::new();
    let mut sets = Reflector::new(store.clone(), &cache.prefix);
    let mut pods = Reflector::new(store.clone(), super::PODS_PREFIX);
    let claims_prefix = by_kind(Kind::PersistentVolumeClaim).prefix(None);
    let mut claims = Reflector::new(store.clone(), &claims_prefix);
    let revisions_prefix = by_kind(Kind::ControllerRevision).prefix(None);
    let mut revisions = Reflector::new(store, &revisions_prefix);
    while !*shutdown.borrow() {
        let timer = cache.queue.sleep_for(jiff::Timestamp::now().as_second());
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = sets.next() => cache.set_change(change),
            change = pods.next() => cache.pod_change(change),
            change = claims.next() => cache.claim_change(change),
            change = revisions.next() => cache.revision_change(change),
            _ = tokio::time::sleep(timer) => {}
        }
        pods.drain(BATCH, |change| cache.pod_change(change));
        sets.drain(BATCH, |change| cache.set_change(change));
        claims.drain(BATCH, |change| cache.claim_change(change));
        revisions.drain(BATCH, |change| cache.revision_change(change));
        if !cache.listed() {
            continue;
        }
        let now = jiff::Timestamp::now().as_second();
        let seen = pods.revision();
        // A set waiting for the pod view stays dirty: synced again once the view has caught up.
        for key in cache.queue.take_ready(now, |rev| *rev > seen) {
            match sync(&api, &mut cache, &key).await {
                Ok(last) => {
                    cache.queue.succeeded(&key);
                    if let Some(rev) = last.filter(|rev| *rev > seen) {
                        cache.queue.expect(key, rev);
                    }
                }
                Err(err) => {
                    tracing::warn!(statefulset = %format!("{}/{}", key.0, key.1), error = %err.message,
                        "failed to sync stateful set; will retry");
                    cache.queue.failed(key, jiff::Timestamp::now().as_second());
                }
            }
        }
    }
    Ok(())
}

/// Claim the pods of the set's namespace that are its members (`<set>-<ordinal>`): adopt selected
/// orphans, release pods no longer selected. Returns the owned pods with their ordinals.
async fn claim_pods(
    api: &Api,
    cache: &Cache,
    set: &Stored,
    selector: &Selector,
    last_write: &mut Option<Revision>,
) -> ApiResult<Vec<(i64, Stored)>> {
    let ns = str_at(&set.value, "/metadata/namespace").to_string();
    let candidates: Vec<(i64, Stored)> = cache
        .pods
        .range((ns.clone(), String::new())..)
        .take_while(|((pod_ns, _), _)| *pod_ns == ns)
        .filter_map(|(_, p)| Some((pods::ordinal_of(set.name(), p.name())?, p.clone())))
        .collect();
    let pod_def = by_kind(Kind::Pod);
    let mut owned = Vec::new();
    for (ordinal, pod) in candidates {
        let adopt = match owners::claim(set.uid(), set.deleting(), selector, &pod) {
            Claim::Owned => {
                owned.push((ordinal, pod));
                continue;
            }
            Claim::Ignore => continue,
            Claim::Adopt => true,
            Claim::Release => false,
        };
        let written =
            owners::rewrite_owner(api, pod_def, &ns, pod.name(), &set.value, adopt).await?;
        if let Some(written) = written {
            owners::note_write(last_write, &written);
            if adopt {
                owned.push((
                    ordinal,
                    Stored {
                        value: std::sync::Arc::new(written),
                        revision: pod.revision,
                    },
                ));
            }
        }
    }
    Ok(owned)
}

/// Sync one StatefulSet; `Some(revision)` of the last pod write it made.
async fn sync(api: &Api, cache: &mut Cache, key: &Key) -> ApiResult<Option<Revision>> {
    let Some(set) = cache.sets.get(key).cloned() else {
        return Ok(None);
    };
    let Some(selector) = Selector::parse(set.value.pointer("/spec/selector")) else {
        tracing::warn!(statefulset = %format!("{}/{}", key.0, key.1), "invalid selector; not syncing");
        return Ok(None);
    };
    let mut last_write: Option<Revision> = None;
    let owned = claim_pods(api, cache, &set, &selector, &mut last_write).await?;
    let template = set
        .value
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    // The revisions' templates as they were before this sync's history writes.
    let revisions: Vec<Stored> =
        history::owned(history::in_namespace(&cache.revisions, &key.0), &set.value)
            .into_iter()
            .cloned()
            .collect();
    let update_revision =
        history::equal_revision(&revisions.iter().collect::<Vec<_>>(), &set.value)
            .map(|r| r.name().to_string())
            .unwrap_or_else(|| pods::revision_name(&set.value, &template));
    let stored_current = str_at(&set.value, "/status/currentRevision");
    let current_revision = if stored_current.is_empty() {
        update_revision.clone()
    } else {
        stored_current.to_string()
    };
    let now = jiff::Timestamp::now().as_second();
    let min_ready = int_at(&set.value, "/spec/minReadySeconds").unwrap_or(0);
    let (start, replicas) = pods::ordinal_range(&set.value);
    let rolling = str_at(&set.value, "/spec/updateStrategy/type") == "RollingUpdate";
    let partition = rolling
        .then(|| int_at(&set.value, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0));
    let mut failure = None;
    if !set.deleting() {
        failure = sync_claims(api, cache, &set.value, &owned).await.err();
    }
    if !set.deleting() && failure.is_none() {
        let view: Vec<&Stored> = revisions.iter().collect();
        let wanted = history::Wanted {
            set: &set.value,
            name: update_revision.clone(),
            hash_label: None,
        };
        let mut live: BTreeSet<String> = owned
            .iter()
            .map(|(_, p)| {
                str_at(
                    &p.value,
                    &format!("/metadata/labels/{}", pods::REVISION_LABEL),
                )
                .to_string()
            })
            .collect();
        live.insert(current_revision.clone());
        failure = history::sync(api, &wanted, &view, &live).await.err();
    }
    let current_template = (current_revision != update_revision)
        .then(|| revisions.iter().find(|r| r.name() == current_revision))
        .flatten()
        .and_then(|r| history::template_of(&r.value));
    if !set.deleting() && failure.is_none() {
        let states: Vec<plan::PodState> = owned
            .iter()
            .map(|(ordinal, pod)| pods::state(pod, *ordinal, min_ready, now))
            .collect();
        let spec = plan::Spec {
            start,
            replicas,
            parallel: str_at(&set.value, "/spec/podManagementPolicy") == "Parallel",
            partition,
            update_revision: &update_revision,
        };
        for action in plan::plan(&spec, &states) {
            let result = match action {
                Action::Create(ordinal) => {
                    // Below the partition a pod comes back at the current revision, when it is known.
                    let old = partition
                        .filter(|p| ordinal - start < *p)
                        .and(current_template.as_ref());
                    let (template, revision) = match old {
                        Some(t) => (t, &current_revision),
                        None => (&template, &update_revision),
                    };
                    let mut pod = pods::new_pod(&set.value, template, revision, ordinal);
                    claims::add_volumes(&set.value, &mut pod, ordinal);
                    if stale_claim(cache, &set.value, ordinal) {
                        // Made again once the claim of the pod scaled down before is gone.
                        Ok(None)
                    } else {
                        control::create_pod(api, &cache.claims, &set.value, pod, ordinal).await
                    }
                }
                Action::Delete(name) => match owned.iter().find(|(_, p)| p.name() == name) {
                    Some((_, pod)) => control::delete_pod(api, &set.value, pod).await,
                    None => Ok(None),
                },
            };
            match result {
                Ok(Some(written)) => owners::note_write(&mut last_write, &written),
                Ok(None) => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
    }
    let owned_refs: Vec<&Stored> = owned.iter().map(|(_, p)| p).collect();
    let counts = pods::counts(
        &owned_refs,
        &current_revision,
        &update_revision,
        min_ready,
        now,
    );
    cache.queue.recheck(key, counts.recheck_at);
    let (current, update) = status::revisions(&set.value, &update_revision, &counts);
    status::write(
        api,
        &set.value,
        status::next_status(&set.value, &counts, &current, &update),
    )
    .await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(last_write),
    }
}

/// Whether a claim of the pod of `ordinal` still refers to an earlier pod of that name (kube's
/// `PodClaimIsStale`, with `whenScaled: Delete`).
fn stale_claim(cache: &Cache, set: &Value, ordinal: i64) -> bool {
    let ns = str_at(set, "/metadata/namespace").to_string();
    let pod = format!("{}-{ordinal}", str_at(set, "/metadata/name"));
    claims::claim_names(set, ordinal).into_iter().any(|name| {
        cache
            .claims
            .get(&(ns.clone(), name))
            .is_some_and(|c| claims::claim_is_stale(&c.value, set, &pod))
    })
}

/// The claims of the set's pods (kube's claim steps of `processReplica` and its `fixPodClaim`): a
/// Pending pod in range gets its missing claims back, and the claims of every pod (in range and not
/// terminating, or condemned) get the owners the retention policy asks for — a condemned pod's before
/// the plan deletes it.
async fn sync_claims(
    api: &Api,
    cache: &Cache,
    set: &Value,
    owned: &[(i64, Stored)],
) -> ApiResult<()> {
    if claims::templates(set).is_empty() {
        return Ok(());
    }
    let (start, replicas) = pods::ordinal_range(set);
    for (ordinal, pod) in owned {
        let scaled_down = *ordinal < start || *ordinal >= start + replicas;
        if !scaled_down {
            if pod.deleting() {
                continue;
            }
            if str_at(&pod.value, "/status/phase") == "Pending" {
                control::ensure_claims(api, &cache.claims, set, pod.name(), *ordinal)
                    .await
                    .map_err(|message| ApiError::new(500, "InternalError", message))?;
            }
        }
        let owner = PodRef::new(pod.name(), pod.uid());
        control::fix_claim_owners(api, &cache.claims, set, &owner, *ordinal, scaled_down).await?;
    }
    Ok(())
}
