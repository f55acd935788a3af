//! The resourcequota controller (kube-controller-manager's): keeps `status.hard` equal to `spec.hard` and
//! recomputes `status.used` from the store — the namespace's pods, services, claims and counted kinds,
//! through the evaluators of `crate::resources::quota::usage`, terminal pods excluded.
//!
//! Quotas are followed with list-then-watch; a new quota or a spec change requeues its namespace. The
//! admission charges new objects, so of the tracked kinds only what frees usage requeues a namespace (as
//! kube's replenishment): deletions, and pods that turn terminal or are being deleted. Requeues are
//! coalesced per namespace, and every quota is recomputed every five minutes. A status write carries the
//! resourceVersion it read: a conflict (an admission charge) requeues the namespace. Nothing is synced
//! before every kind is listed (kube's cache sync).
//!
//! As in kube, a recomputation that reads the store while an admitted object is between its charge and its
//! write counts without that object, and the quota can admit more than its room until the next one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::owners::{self, Key, Stored, key_of};
use super::reflector::{Change, Reflector};
use crate::handlers::{Api, decode_kv};
use crate::resources::quota::usage::{self, Evaluator, Usage};
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;
use crate::store::Store;

/// The field manager of the controller's status writes.
const MANAGER: &str = "kube-controller-manager";
/// kube's `--resource-quota-sync-period` default.
pub const RESYNC: Duration = Duration::from_secs(300);
/// At most this many already-delivered changes are folded into one round before syncing.
const BATCH: usize = 512;

/// Whether a quota needs a full recalculation: its limits changed or its usage was never computed.
fn needs_sync(quota: &Value) -> bool {
    let hard = quota.pointer("/spec/hard");
    let status_hard = quota.pointer("/status/hard");
    let used = usage::from_json(quota.pointer("/status/used"));
    usage::from_json(hard) != usage::from_json(status_hard)
        || quota.pointer("/status/used").is_none()
        || usage::from_json(hard)
            .keys()
            .any(|k| !used.contains_key(k) && Evaluator::for_resource(k).is_some())
}

/// Whether a change of a tracked object may free usage (kube's replenishment).
fn frees_usage(change: &Change) -> Option<bool> {
    match change {
        Change::Reset(_) => None,
        Change::Delete(_) => Some(true),
        Change::Put(kv) => {
            let Ok(v) = decode_kv(kv) else {
                return Some(false);
            };
            let terminal = matches!(
                v.pointer("/status/phase").and_then(Value::as_str),
                Some("Succeeded" | "Failed")
            );
            Some(
                terminal
                    || v.pointer("/metadata/deletionTimestamp")
                        .is_some_and(|t| !t.is_null()),
            )
        }
    }
}

/// The namespace of a change's key under `prefix`.
fn namespace_of(prefix: &str, change: &Change) -> Option<String> {
    match change {
        Change::Put(kv) | Change::Delete(kv) => key_of(prefix, kv).map(|k| k.0),
        Change::Reset(_) => None,
    }
}

struct Cache {
    prefix: String,
    quotas: BTreeMap<Key, Stored>,
    listed: bool,
    dirty: BTreeSet<String>,
}

impl Cache {
    fn quota_change(&mut self, change: Change) {
        match change {
            Change::Reset(items) => {
                self.quotas = items
                    .iter()
                    .filter_map(|kv| Some((key_of(&self.prefix, kv)?, Stored::parse(kv)?)))
                    .collect();
                self.listed = true;
                self.dirty.extend(self.quotas.keys().map(|k| k.0.clone()));
            }
            Change::Put(kv) => {
                let Some(key) = key_of(&self.prefix, &kv) else {
                    return;
                };
                match Stored::parse(&kv) {
                    Some(q) => {
                        if needs_sync(&q.value) {
                            self.dirty.insert(key.0.clone());
                        }
                        self.quotas.insert(key, q);
                    }
                    None => {
                        self.quotas.remove(&key);
                    }
                }
            }
            Change::Delete(kv) => {
                if let Some(key) = key_of(&self.prefix, &kv) {
                    self.quotas.remove(&key);
                }
            }
        }
    }

    /// Requeue the namespace of a tracked object's change when it has quotas and the change may free
    /// usage (every namespace with quotas after a re-list).
    fn tracked_change(&mut self, prefix: &str, change: &Change) {
        match frees_usage(change) {
            None => self.dirty.extend(self.quotas.keys().map(|k| k.0.clone())),
            Some(false) => {}
            Some(true) => {
                if let Some(ns) = namespace_of(prefix, change)
                    && self.quotas.keys().any(|k| k.0 == ns)
                {
                    self.dirty.insert(ns);
                }
            }
        }
    }
}

/// The kinds whose changes requeue quotas: pods, services, claims, configmaps and secrets.
fn tracked_prefixes() -> Vec<String> {
    [
        Kind::Pod,
        Kind::Service,
        Kind::PersistentVolumeClaim,
        Kind::ConfigMap,
        Kind::Secret,
    ]
    .iter()
    .map(|k| by_kind(*k).prefix(None))
    .collect()
}

/// Run the resourcequota controller until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store.clone());
    let mut cache = Cache {
        prefix: by_kind(Kind::ResourceQuota).prefix(None),
        quotas: BTreeMap::new(),
        listed: false,
        dirty: BTreeSet::new(),
    };
    let mut quotas = Reflector::new(store.clone(), &cache.prefix);
    let prefixes = tracked_prefixes();
    let mut tracked: Vec<Reflector> = prefixes
        .iter()
        .map(|p| Reflector::new(store.clone(), p))
        .collect();
    // As kube's controllers wait for their informers to sync: no quota is synced before every tracked
    // kind is listed. The first listings then carry nothing to requeue (the quotas' own listing requeues
    // every namespace, and a sync reads the store); a later one (a re-list) may hide deletions, so it does.
    let mut tracked_listed = vec![false; tracked.len()];
    let mut resync = tokio::time::interval(RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        let next_tracked = futures::future::select_all(
            tracked
                .iter_mut()
                .enumerate()
                .map(|(i, r)| Box::pin(async move { (i, r.next().await) })),
        );
        tokio::select! {
            changed = shutdown.changed() => if changed.is_err() { break },
            change = quotas.next() => cache.quota_change(change),
            ((i, change), _, _) = next_tracked => {
                if matches!(change, Change::Reset(_)) && !tracked_listed[i] {
                    tracked_listed[i] = true;
                } else {
                    cache.tracked_change(&prefixes[i], &change);
                }
            }
            _ = resync.tick() => cache.dirty.extend(cache.quotas.keys().map(|k| k.0.clone())),
        }
        quotas.drain(BATCH, |change| cache.quota_change(change));
        for (i, r) in tracked.iter_mut().enumerate() {
            r.drain(BATCH, |change| cache.tracked_change(&prefixes[i], &change));
        }
        if !cache.listed || tracked_listed.contains(&false) {
            continue;
        }
        let dirty: Vec<String> = std::mem::take(&mut cache.dirty).into_iter().collect();
        let now = jiff::Timestamp::now().as_second();
        for ns in dirty {
            if let Err(err) = sync_namespace(&api, &cache, &ns, now).await {
                tracing::warn!(namespace = %ns, error = %err.message,
                    "failed to sync resource quotas; will retry");
                cache.dirty.insert(ns);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// Recompute every quota of `ns`; a conflicting write leaves the namespace for the next round.
async fn sync_namespace(api: &Api, cache: &Cache, ns: &str, now: i64) -> ApiResult<()> {
    let quotas: Vec<&Stored> = cache
        .quotas
        .range((ns.to_string(), String::new())..)
        .take_while(|((q_ns, _), _)| q_ns == ns)
        .map(|(_, q)| q)
        .collect();
    let mut listed: BTreeMap<Evaluator, Vec<Value>> = BTreeMap::new();
    for q in quotas {
        let hard = usage::from_json(q.value.pointer("/spec/hard"));
        let used = compute(api, &q.value, &hard, ns, now, &mut listed).await?;
        write(api, &q.value, &hard, &used).await?;
    }
    Ok(())
}

/// kube's `CalculateUsage`: for each evaluator that tracks a resource of `hard`, the sum over the
/// namespace's objects that count and are in the quota's scopes, with 0 for tracked resources no object
/// uses; resources no evaluator tracks keep their previous usage.
pub async fn compute(
    api: &Api,
    quota: &Value,
    hard: &Usage,
    ns: &str,
    now: i64,
    listed: &mut BTreeMap<Evaluator, Vec<Value>>,
) -> ApiResult<Usage> {
    let mut used = usage::from_json(quota.pointer("/status/used"));
    let scopes = usage::scope_requirements(quota);
    let evaluators: BTreeSet<Evaluator> = hard
        .keys()
        .filter_map(|k| Evaluator::for_resource(k))
        .collect();
    for eval in evaluators {
        let Some(def) = eval.def() else { continue };
        let matched = eval.matching(hard.keys());
        if let std::collections::btree_map::Entry::Vacant(slot) = listed.entry(eval) {
            let (kvs, _) = api.store.list(&def.prefix(Some(ns))).await?;
            slot.insert(kvs.iter().filter_map(|kv| decode_kv(kv).ok()).collect());
        }
        let mut sum: Usage = matched
            .iter()
            .map(|k| (k.clone(), usage::Amount::count(0)))
            .collect();
        for obj in listed.get(&eval).into_iter().flatten() {
            if eval.counts(obj, now) && eval.in_scopes(&scopes, obj) {
                sum = usage::add(&sum, &usage::mask(&eval.usage(obj), &matched));
            }
        }
        // Zeros start the sums in decimal notation; the objects' notation (`Mi`) is kube's for a sum.
        for (k, v) in sum {
            used.insert(k, v);
        }
    }
    Ok(usage::mask(&used, hard.keys()))
}

/// Write `status = {hard, used}` through `resourcequotas/status` when it differs from the stored one.
async fn write(api: &Api, quota: &Value, hard: &Usage, used: &Usage) -> ApiResult<()> {
    let stored_hard = usage::from_json(quota.pointer("/status/hard"));
    let stored_used = usage::from_json(quota.pointer("/status/used"));
    if quota.pointer("/status/used").is_some() && &stored_hard == hard && &stored_used == used {
        return Ok(());
    }
    let mut body = quota.clone();
    body["status"] =
        serde_json::json!({"hard": usage::to_json(hard), "used": usage::to_json(used)});
    let ns = owners::str_at(quota, "/metadata/namespace");
    let name = owners::str_at(quota, "/metadata/name");
    match api
        .update(
            by_kind(Kind::ResourceQuota),
            Some(ns),
            name,
            Some("status"),
            body,
            &[],
            &super::object::write_opts(MANAGER),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted meanwhile: nothing to keep.
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
