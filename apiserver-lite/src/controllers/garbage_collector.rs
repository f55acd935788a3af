//! The garbage collector (kube-controller-manager's `garbagecollector`): objects whose owners are gone
//! go too, and owners deleted with a propagation policy get their dependents handled.
//!
//! - An object all of whose `metadata.ownerReferences` point at objects that no longer exist (an owner
//!   exists only with the same apiVersion/kind, name and uid; a namespaced owner is looked for in the
//!   dependent's namespace, a cluster-scoped one cluster-wide) is deleted, in the background unless its
//!   own finalizers say otherwise. With some owners left it only loses the references to the others.
//! - An owner being deleted with the `foregroundDeletion` finalizer (`propagationPolicy: Foreground`)
//!   stays visible while its dependents are deleted (those that own objects themselves in the
//!   foreground too); the finalizer goes once no dependent with `blockOwnerDeletion: true` is left.
//! - An owner being deleted with the `orphan` finalizer (`Orphan`, `orphanDependents: true`) has its
//!   references removed from its dependents, then the finalizer.
//!
//! Every resource of [`crate::resources::RESOURCES`] is covered, with no per-kind code: one list-then-watch
//! of `/registry/` feeds a [`Graph`] that keeps only keys, uids and owner links. Writes go through the REST
//! handlers (deletion with a uid precondition, so pods get graceful deletion; finalizer removal through
//! an update, which completes a deletion). Unresolvable references (kinds this server does not serve, a
//! namespaced owner of a cluster-scoped object) leave the object alone, as kube does.

mod decide;
mod graph;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use super::reflector::{Change, Reflector};
use crate::handlers::{Api, DeleteOpts, FINALIZER_FOREGROUND, FINALIZER_ORPHAN, Propagation};
use crate::patch::PatchType;
use crate::status::{ApiError, ApiResult};
use crate::store::Store;
use decide::{OwnerState, Target, Verdict};
use graph::{Graph, Meta, Mode, Work};

const MANAGER: &str = "kube-controller-manager";
/// Work items in flight at once (kube runs 20 delete workers).
const WORKERS: usize = 16;
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// The longest wait before another try of failing work.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Tries of a read-modify-write that keeps meeting concurrent writes.
const EDIT_TRIES: usize = 8;

/// Collect garbage until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut reflector = Reflector::new(store, "/registry/");
    let mut graph = Graph::default();
    let mut queue: BTreeSet<Work> = BTreeSet::new();
    let mut failed = Backoff::default();
    let mut retry = tokio::time::interval(RETRY_INTERVAL);
    while !*shutdown.borrow() {
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = reflector.next() => {
                queue.extend(apply(&mut graph, change));
                // Take in what is already delivered, so a burst is handled as one batch.
                reflector.drain(usize::MAX, |change| queue.extend(apply(&mut graph, change)));
            }
            _ = retry.tick() => queue.extend(failed.due()),
        }
        if queue.is_empty() {
            continue;
        }
        let batch = std::mem::take(&mut queue);
        let results: Vec<(Work, ApiResult<Vec<Work>>)> = futures::stream::iter(batch)
            .map(|work| {
                let (api, graph) = (&api, &graph);
                async move {
                    let result = process(api, graph, &work).await;
                    (work, result)
                }
            })
            .buffer_unordered(WORKERS)
            .collect()
            .await;
        for (work, result) in results {
            match result {
                Ok(more) => {
                    failed.forget(&work);
                    queue.extend(more);
                }
                Err(e) => {
                    let after = failed.failed(work.clone());
                    tracing::warn!(?work, error = %e.message, retry_in = ?after,
                        "garbage collection failed; will retry");
                }
            }
        }
    }
    Ok(())
}

/// Failed work and when to try it again: 1 s after the first failure, doubling up to [`MAX_BACKOFF`].
#[derive(Default)]
struct Backoff {
    pending: HashMap<Work, (u32, Instant)>,
}

impl Backoff {
    /// Record a failure; returns the wait before the next try.
    fn failed(&mut self, work: Work) -> Duration {
        let entry = self.pending.entry(work).or_insert((0, Instant::now()));
        let wait = RETRY_INTERVAL
            .saturating_mul(1u32 << entry.0.min(16))
            .min(MAX_BACKOFF);
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now() + wait;
        wait
    }

    fn forget(&mut self, work: &Work) {
        self.pending.remove(work);
    }

    /// The work whose wait is over (kept here until it succeeds).
    fn due(&self) -> Vec<Work> {
        let now = Instant::now();
        self.pending
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(w, _)| w.clone())
            .collect()
    }
}

fn apply(graph: &mut Graph, change: Change) -> BTreeSet<Work> {
    match change {
        Change::Reset(kvs) => {
            let work = graph.reset(&kvs);
            tracing::debug!(
                dependents = graph.dependent_count(),
                pending = work.len(),
                "garbage collector: (re)listed the store"
            );
            work
        }
        Change::Put(kv) => graph.apply_put(&kv),
        Change::Delete(kv) => graph.apply_delete(&kv),
    }
}

/// Do one piece of work against the current store; returns follow-up work.
async fn process(api: &Api, graph: &Graph, work: &Work) -> ApiResult<Vec<Work>> {
    match work {
        Work::Dependent(key) => attempt_to_delete(api, graph, key).await,
        Work::Owner(key) => finish_owner(api, graph, key).await,
    }
}

/// The target of a stored object's own key.
fn target_of(key: &str) -> Option<Target> {
    let (def, ns, name) = graph::resolve_key(key)?;
    Some(Target {
        def,
        namespace: ns.map(str::to_string),
        name: name.to_string(),
        key: key.to_string(),
    })
}

/// The object stored under `key`, as JSON with its resourceVersion, and its metadata.
async fn read(api: &Api, key: &str) -> ApiResult<Option<(Value, Meta)>> {
    let Some(kv) = api.store.get(key).await? else {
        return Ok(None);
    };
    let meta = Meta::parse(key, &kv.value);
    let value = crate::handlers::decode_kv(&kv)?;
    Ok(Some((value, meta)))
}

/// kube's `attemptToDeleteItem`: check a dependent's owners and delete it, or drop references, as
/// [`decide::decide`] says.
async fn attempt_to_delete(api: &Api, graph: &Graph, key: &str) -> ApiResult<Vec<Work>> {
    let Some(target) = target_of(key) else {
        return Ok(Vec::new());
    };
    let Some((_, meta)) = read(api, key).await? else {
        return Ok(Vec::new());
    };
    if meta.deletion_timestamp.is_some() {
        // Being deleted is a one-way trip; one deleting its dependents is finished as an owner.
        return match meta.deleting() {
            Some(Mode::Foreground) => finish_owner(api, graph, key).await,
            _ => Ok(Vec::new()),
        };
    }
    let refs = meta.refs();
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    let mut states = Vec::with_capacity(refs.len());
    for r in refs {
        let Some(owner) = decide::owner_target(target.namespace.as_deref(), r) else {
            tracing::debug!(key, owner = ?r, "garbage collector: unresolvable owner reference");
            return Ok(Vec::new());
        };
        let state = match read(api, &owner.key).await? {
            None => OwnerState::Absent,
            Some((_, m)) => OwnerState::Present {
                uid: m.uid().to_string(),
                deleting_dependents: m.deleting() == Some(Mode::Foreground),
            },
        };
        states.push(Some(state));
    }
    let verdict = decide::decide(refs, &states, meta.finalizers(), graph.facts(meta.uid()));
    match verdict {
        Verdict::Keep | Verdict::Unresolvable => {}
        Verdict::RemoveRefs(uids) => {
            tracing::info!(key, owners = ?uids, "garbage collector: removing references to owners that are gone");
            remove_refs(api, &target, meta.uid(), &uids).await?;
        }
        Verdict::Delete {
            propagation,
            unblock,
        } => {
            if unblock {
                unblock_owners(api, &target, meta.uid()).await?;
            }
            tracing::debug!(
                key,
                propagation = propagation.as_str(),
                "garbage collector: deleting an object whose owners are gone"
            );
            delete(api, &target, meta.uid(), propagation).await?;
        }
    }
    Ok(Vec::new())
}

/// An owner being deleted with a collector finalizer: orphan its dependents, or wait for the blocking
/// ones to go, then remove the finalizer.
async fn finish_owner(api: &Api, graph: &Graph, key: &str) -> ApiResult<Vec<Work>> {
    let Some(target) = target_of(key) else {
        return Ok(Vec::new());
    };
    let Some((_, meta)) = read(api, key).await? else {
        return Ok(Vec::new());
    };
    let uid = meta.uid().to_string();
    match meta.deleting() {
        None => Ok(Vec::new()),
        Some(Mode::Orphan) => {
            let uids = [uid.clone()];
            for dep in graph.dependents_of(&uid) {
                if let Some(dep_target) = target_of(&dep.key) {
                    remove_refs(api, &dep_target, "", &uids).await?;
                }
            }
            tracing::info!(key, "garbage collector: dependents orphaned");
            remove_finalizer(api, &target, &uid, FINALIZER_ORPHAN).await?;
            Ok(Vec::new())
        }
        Some(Mode::Foreground) => {
            let blocking: Vec<_> = graph
                .dependents_of(&uid)
                .into_iter()
                .filter(|dep| dep.blocks)
                .collect();
            if blocking.is_empty() {
                tracing::info!(key, "garbage collector: no blocking dependents left");
                remove_finalizer(api, &target, &uid, FINALIZER_FOREGROUND).await?;
                return Ok(Vec::new());
            }
            // Dependents not yet being deleted are deleted (or lose this owner); those being deleted
            // (foreground ones included: they finish on their own) are waited for.
            Ok(blocking
                .into_iter()
                .filter(|dep| !dep.terminating)
                .map(|dep| Work::Dependent(dep.key))
                .collect())
        }
    }
}

/// A merge patch of `metadata` guarded by the object's resourceVersion (a concurrent write makes it
/// fail with 409, and the edit is made again on the new object). `f` edits the metadata and says whether
/// anything changed. Objects that are gone, or replaced (another uid, when `uid` is given), are left.
async fn edit_metadata(
    api: &Api,
    target: &Target,
    uid: &str,
    f: impl Fn(&mut serde_json::Map<String, Value>) -> bool,
) -> ApiResult<()> {
    for _ in 0..EDIT_TRIES {
        let Some((value, meta)) = read(api, &target.key).await? else {
            return Ok(());
        };
        if !uid.is_empty() && meta.uid() != uid {
            return Ok(());
        }
        let mut metadata = value
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !f(&mut metadata) {
            return Ok(());
        }
        let mut patch = serde_json::Map::new();
        for field in ["ownerReferences", "finalizers", "resourceVersion"] {
            patch.insert(
                field.into(),
                metadata.get(field).cloned().unwrap_or(Value::Null),
            );
        }
        let result = api
            .patch(
                target.def,
                target.namespace.as_deref(),
                &target.name,
                None,
                PatchType::Merge,
                json!({"metadata": patch}),
                &[],
                &super::object::write_opts(MANAGER),
                false,
            )
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 404 => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::modified(
        target.def.group,
        target.def.plural,
        &target.name,
    ))
}

/// Drop the references to the owners with `owner_uids` from the object at `target`.
async fn remove_refs(
    api: &Api,
    target: &Target,
    uid: &str,
    owner_uids: &[String],
) -> ApiResult<()> {
    edit_metadata(api, target, uid, |m| {
        let Some(refs) = m.get_mut("ownerReferences").and_then(Value::as_array_mut) else {
            return false;
        };
        let before = refs.len();
        refs.retain(|r| {
            let ref_uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
            !owner_uids.iter().any(|u| u == ref_uid)
        });
        if refs.is_empty() {
            m.insert("ownerReferences".into(), Value::Null);
            return true;
        }
        refs.len() != before
    })
    .await
}

/// Clear `blockOwnerDeletion` on every reference of the object (kube's cycle breaker).
async fn unblock_owners(api: &Api, target: &Target, uid: &str) -> ApiResult<()> {
    edit_metadata(api, target, uid, |m| {
        let mut changed = false;
        for r in m
            .get_mut("ownerReferences")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
                r["blockOwnerDeletion"] = Value::Bool(false);
                changed = true;
            }
        }
        changed
    })
    .await
}

/// Remove one finalizer; through the update path, which deletes a terminating object left without any.
async fn remove_finalizer(api: &Api, target: &Target, uid: &str, finalizer: &str) -> ApiResult<()> {
    edit_metadata(api, target, uid, |m| {
        let Some(list) = m.get_mut("finalizers").and_then(Value::as_array_mut) else {
            return false;
        };
        let before = list.len();
        list.retain(|f| f.as_str() != Some(finalizer));
        list.len() != before
    })
    .await
}

/// Delete through the REST handlers (graceful deletion for pods), only the object with `uid`.
async fn delete(api: &Api, target: &Target, uid: &str, propagation: Propagation) -> ApiResult<()> {
    let opts = DeleteOpts {
        uid: Some(uid.to_string()),
        propagation: Some(propagation),
        ..DeleteOpts::default()
    };
    match api
        .delete(
            target.def,
            target.namespace.as_deref(),
            &target.name,
            &opts,
            false,
        )
        .await
    {
        // Gone already, or replaced by another object of that name.
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_work_waits_longer_each_time() {
        let mut b = Backoff::default();
        let w = Work::Dependent("/registry/pods/a/p".into());
        let waits: Vec<Duration> = (0..12).map(|_| b.failed(w.clone())).collect();
        assert_eq!(waits[0], Duration::from_secs(1));
        assert_eq!(waits[1], Duration::from_secs(2));
        assert_eq!(waits[3], Duration::from_secs(8));
        assert_eq!(waits[11], MAX_BACKOFF);
        assert!(b.due().is_empty(), "not due before its wait is over");
        b.pending.insert(w.clone(), (1, Instant::now()));
        assert_eq!(b.due(), vec![w.clone()]);
        b.forget(&w);
        assert!(b.due().is_empty());
    }

    #[test]
    fn own_keys_are_targets() {
        let t = target_of("/registry/configmaps/ns1/c").expect("target");
        assert_eq!(
            (t.def.plural, t.namespace.as_deref(), t.name.as_str()),
            ("configmaps", Some("ns1"), "c")
        );
        assert!(target_of("/registry/serviceips/10.96.0.1").is_none());
    }
}
