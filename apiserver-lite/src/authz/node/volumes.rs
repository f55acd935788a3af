//! The Node authorizer's PersistentVolume rule: a node may get (by name) a volume that a pod bound to it
//! uses through a claim (pod → `persistentVolumeClaim.claimName`, or `<pod>-<volume>` of a generic
//! ephemeral volume → claim `spec.volumeName`), or whose node affinity requires `kubernetes.io/hostname
//! In [<node>]`, or that does not exist (the handler then answers 404). The agent resolves a pod's claim
//! to its volume with these reads.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{bound_to, no_relationship};
use crate::authz::Decision;
use crate::resources::{Kind, by_kind};
use crate::status::{ApiError, ApiResult};
use crate::store::Store;

const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

async fn get(
    store: &dyn Store,
    kind: Kind,
    ns: Option<&str>,
    name: &str,
) -> ApiResult<Option<Value>> {
    let key = by_kind(kind).key(ns, name);
    match store.get(&key).await? {
        None => Ok(None),
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("decoding {key}: {e}"))),
    }
}

/// Whether a term of the volume's required node affinity selects `node` by host name.
fn affinity_names_node(pv: &Value, node: &str) -> bool {
    pv.pointer("/spec/nodeAffinity/required/nodeSelectorTerms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("matchExpressions").and_then(Value::as_array))
        .flatten()
        .any(|e| {
            e.get("key").and_then(Value::as_str) == Some(HOSTNAME_LABEL)
                && e.get("operator").and_then(Value::as_str) == Some("In")
                && e.get("values")
                    .and_then(Value::as_array)
                    .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(node)))
        })
}

/// The claims (namespace, name) that pods bound to `node` mount.
async fn claims_of_node(store: &dyn Store, node: &str) -> ApiResult<BTreeSet<(String, String)>> {
    let (pods, _) = store.list(&by_kind(Kind::Pod).prefix(None)).await?;
    let mut claims = BTreeSet::new();
    for kv in pods {
        let Ok(p) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if !bound_to(&p, node) {
            continue;
        }
        let ns = p
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        for claim in super::pod_claims(&p) {
            claims.insert((ns.to_string(), claim));
        }
    }
    Ok(claims)
}

/// `get persistentvolumes/<name>` by node `node`.
pub async fn authorize_get(store: &dyn Store, node: &str, name: &str) -> ApiResult<Decision> {
    let Some(pv) = get(store, Kind::PersistentVolume, None, name).await? else {
        return Ok(Decision::Allow);
    };
    if affinity_names_node(&pv, node) {
        return Ok(Decision::Allow);
    }
    for (ns, claim) in claims_of_node(store, node).await? {
        let Some(c) = get(store, Kind::PersistentVolumeClaim, Some(&ns), &claim).await? else {
            continue;
        };
        if c.pointer("/spec/volumeName").and_then(Value::as_str) == Some(name) {
            return Ok(Decision::Allow);
        }
    }
    Ok(no_relationship(node))
}
