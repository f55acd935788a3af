//! kube-apiserver's ResourceQuota admission plugin, on create: every quota of the namespace whose scopes
//! the new object is in and that tracks something it costs must have room for it, and is charged for it
//! (`status.used`) before the object is stored, with an optimistic-concurrency write of the quota — a
//! conflict re-reads the quotas and checks again, as kube's quota evaluator does. A quota the controller
//! has not synced (no `status.hard`) is not enforced yet, as in kube; one whose `status.used` lacks a
//! tracked resource refuses (`status unknown for quota`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::usage::{self, Evaluator, Usage};
use crate::handlers::{Api, decode_kv, encode};
use crate::resources::{Kind, ResourceDef, by_kind};
use crate::status::{ApiError, ApiResult, qualified};
use crate::store::{KeyValue, StoreError};

/// How many times a charge is retried after a conflicting quota write before the create is refused.
const ATTEMPTS: usize = 10;

/// The quotas `obj` must be charged to and their new `status.used`, or kube's refusal text.
pub fn check(
    eval: Evaluator,
    quotas: &[Value],
    obj: &Value,
) -> Result<Vec<(usize, Usage)>, String> {
    let mut interesting = Vec::new();
    for (i, q) in quotas.iter().enumerate() {
        let name = q
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let hard = usage::from_json(q.pointer("/status/hard"));
        let restricted = eval.matching(hard.keys());
        if restricted.is_empty() || !eval.in_scopes(&usage::scope_requirements(q), obj) {
            continue;
        }
        eval.constraints(&restricted, obj)
            .map_err(|e| format!("failed quota: {name}: {e}"))?;
        let used = usage::from_json(q.pointer("/status/used"));
        if restricted.iter().any(|r| !used.contains_key(r)) {
            let names: BTreeSet<&String> = restricted.iter().collect();
            let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
            return Err(format!(
                "status unknown for quota: {name}, resources: {}",
                names.join(",")
            ));
        }
        interesting.push((i, name, hard, used));
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let delta = eval.usage(obj);
    if delta.values().all(|a| a.nano == 0) {
        return Ok(Vec::new());
    }
    let mut charges = Vec::new();
    for (i, name, hard, used) in interesting {
        let requested = usage::mask(&delta, hard.keys());
        let new_usage = usage::add(&used, &requested);
        let exceeded: Vec<String> = usage::mask(&new_usage, requested.keys())
            .into_iter()
            .filter(|(k, v)| hard.get(k).is_some_and(|h| v.nano > h.nano))
            .map(|(k, _)| k)
            .collect();
        if !exceeded.is_empty() {
            return Err(format!(
                "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                usage::pretty(&usage::mask(&requested, &exceeded)),
                usage::pretty(&usage::mask(&used, &exceeded)),
                usage::pretty(&usage::mask(&hard, &exceeded)),
            ));
        }
        charges.push((i, new_usage));
    }
    Ok(charges)
}

/// kube's admission Forbidden: `pods "web" is forbidden: <why>`.
fn forbidden(def: &ResourceDef, name: &str, why: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!(
        "{} {name:?} is forbidden: {why}",
        qualified(def.group, def.plural)
    ));
    e.details = Some(json!({"name": name, "group": def.group, "kind": def.plural}));
    e
}

/// Check the create of `obj` (a `def`) against the quotas of its namespace and, unless `dry_run`,
/// charge them.
pub async fn admit_create(
    api: &Api,
    def: &ResourceDef,
    obj: &Value,
    dry_run: bool,
) -> ApiResult<()> {
    if !def.namespaced {
        return Ok(());
    }
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let eval = Evaluator::for_def(def);
    let quota_def = by_kind(Kind::ResourceQuota);
    let prefix = quota_def.prefix(Some(ns));
    // Quotas (by uid) already charged in an earlier attempt: a retry must not charge them twice.
    let mut charged: BTreeSet<String> = BTreeSet::new();
    for attempt in 0..ATTEMPTS {
        // The first attempt reads the server's cache. A stale quota then fails its compare-and-swap and a
        // refusal is confirmed against the store, so the cache's lag only matters for a quota it has not yet
        // seen (synced): that one goes unenforced for one watch delivery, as behind kube's informer.
        let cached = match attempt {
            0 => api.caches.as_ref().and_then(|c| c.quotas.list(&prefix)),
            _ => None,
        };
        let from_cache = cached.is_some();
        let listed: Vec<(KeyValue, Value)> = match cached {
            Some(items) => items
                .iter()
                .map(|p| (p.kv.clone(), p.value.clone()))
                .collect(),
            None => {
                let (kvs, _) = api.store.list(&prefix).await?;
                let mut listed = Vec::with_capacity(kvs.len());
                for kv in kvs {
                    let q = decode_kv(&kv)?;
                    listed.push((kv, q));
                }
                listed
            }
        };
        let stored: Vec<(KeyValue, Value)> = listed
            .into_iter()
            .filter(|(_, q)| {
                let uid = q
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                !charged.contains(uid)
            })
            .collect();
        let quotas: Vec<Value> = stored.iter().map(|(_, q)| q.clone()).collect();
        let charges = match check(eval, &quotas, obj) {
            Ok(charges) => charges,
            Err(_) if from_cache => continue,
            Err(why) => return Err(forbidden(def, name, &why)),
        };
        if dry_run || charges.is_empty() {
            return Ok(());
        }
        let mut conflicted = false;
        for (i, used) in charges {
            let Some((kv, q)) = stored.get(i) else {
                continue;
            };
            let mut next = q.clone();
            next["status"]["used"] = usage::to_json(&used);
            match api
                .store
                .update(&kv.key, encode(&next), kv.mod_revision)
                .await
            {
                Ok(_) => {
                    let uid = q
                        .pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    charged.insert(uid.to_string());
                }
                // Another write charged or synced this quota first: read it again and re-check.
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => conflicted = true,
                Err(e) => return Err(e.into()),
            }
        }
        if !conflicted {
            return Ok(());
        }
    }
    Err(forbidden(def, name, "resource quota evaluation timed out"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn quota(name: &str, hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"},
            "spec": {"hard": hard.clone()}, "status": {"hard": hard, "used": used}})
    }

    fn pod(requests: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx",
                "resources": {"requests": requests}}]}})
    }

    #[test]
    fn charges_within_hard_and_refuses_beyond_with_kube_text() {
        let q = quota(
            "q",
            json!({"pods": "2", "requests.cpu": "1"}),
            json!({"pods": "1", "requests.cpu": "500m"}),
        );
        let charges = check(
            Evaluator::Pods,
            std::slice::from_ref(&q),
            &pod(json!({"cpu": "500m"})),
        )
        .expect("fits");
        assert_eq!(charges.len(), 1);
        assert_eq!(
            usage::to_json(&charges[0].1),
            json!({"pods": "2", "requests.cpu": "1"})
        );
        let err = check(Evaluator::Pods, &[q], &pod(json!({"cpu": "600m"}))).expect_err("refused");
        assert_eq!(
            err,
            "exceeded quota: q, requested: requests.cpu=600m, used: requests.cpu=500m, limited: requests.cpu=1"
        );
    }

    #[test]
    fn missing_requests_unknown_status_and_unsynced_quotas() {
        let q = quota(
            "q",
            json!({"limits.cpu": "2", "requests.memory": "1Gi"}),
            json!({}),
        );
        let err =
            check(Evaluator::Pods, std::slice::from_ref(&q), &pod(json!({}))).expect_err("refused");
        assert_eq!(
            err,
            "failed quota: q: must specify limits.cpu for: nginx; requests.memory for: nginx"
        );
        let p = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "nginx",
            "resources": {"requests": {"memory": "1Gi"}, "limits": {"cpu": "1"}}}]}});
        assert_eq!(
            check(Evaluator::Pods, &[q], &p).expect_err("refused"),
            "status unknown for quota: q, resources: limits.cpu,requests.memory"
        );
        // Not synced yet: no status.hard, nothing enforced (kube).
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}});
        assert!(check(Evaluator::Pods, &[fresh], &p).expect("ok").is_empty());
    }

    #[test]
    fn scopes_and_other_kinds() {
        let mut scoped = quota("be", json!({"pods": "0"}), json!({"pods": "0"}));
        scoped["spec"]["scopes"] = json!(["BestEffort"]);
        // A pod with requests is not BestEffort: the quota does not apply.
        assert!(
            check(
                Evaluator::Pods,
                std::slice::from_ref(&scoped),
                &pod(json!({"cpu": "1"}))
            )
            .is_ok()
        );
        let err = check(
            Evaluator::Pods,
            std::slice::from_ref(&scoped),
            &pod(json!({})),
        )
        .expect_err("refused");
        assert!(
            err.starts_with("exceeded quota: be, requested: pods=1"),
            "{err}"
        );
        // Scoped quotas never match other kinds.
        let cm = json!({"metadata": {"name": "c"}});
        let count = Evaluator::Count("", "configmaps");
        assert!(check(count, &[scoped], &cm).expect("ok").is_empty());
        let q = quota(
            "objs",
            json!({"configmaps": "1", "count/configmaps": "1"}),
            json!({"configmaps": "1", "count/configmaps": "0"}),
        );
        assert_eq!(
            check(count, &[q], &cm).expect_err("refused"),
            "exceeded quota: objs, requested: configmaps=1, used: configmaps=1, limited: configmaps=1"
        );
    }
}
