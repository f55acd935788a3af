//! The Node authorizer and NodeRestriction admission for node credentials (user `system:node:<name>` in
//! group `system:nodes`).
//!
//! Reads: nodes, pods, services, endpoints; secrets, configmaps and PVCs only by name and only when a pod
//! bound to the node references them (volumes, generic ephemeral volumes' claims `<pod>-<volume>`,
//! projected volume sources, env); PVs by name as `volumes` says (through its pods' claims, its node
//! affinity, or absent). Writes: its own Node
//! (+status), its own Lease in `kube-node-lease`, events, the status of pods bound to it, deletion of pods
//! bound to it, creation of mirror pods only; tokens (`serviceaccounts/token`) of the service accounts its
//! pods run as, and (NodeRestriction) only bound to such a pod.
//! Anything else gets no opinion here (RBAC decides, and grants nodes nothing by default).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Attributes, Decision};
use crate::resources::{Kind, by_kind};
use crate::serviceaccount::token_request::pod_service_account;
use crate::status::{ApiError, ApiResult};
use crate::store::Store;

mod volumes;

pub const NODES_GROUP: &str = "system:nodes";
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const RESTRICTED_LABEL_PREFIX: &str = "node-restriction.kubernetes.io/";

/// The node name of a node credential.
pub fn node_name<'a>(user: &'a str, groups: &[String]) -> Option<&'a str> {
    let name = user.strip_prefix("system:node:")?;
    (!name.is_empty() && groups.iter().any(|g| g == NODES_GROUP)).then_some(name)
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

/// The verbs and resources a node holds without looking at objects (the `system:node` role's shape).
fn static_decision(node: &str, a: &Attributes) -> Option<Decision> {
    let v = a.verb.as_str();
    let allow = Some(Decision::Allow);
    match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "nodes", "") if is_read(v) || v == "create" => allow,
        ("", "nodes", "" | "status") => {
            let own = a.name == node
                && matches!(v, "get" | "update" | "patch" | "delete" | "list" | "watch");
            if own || (a.subresource == "status" && is_read(v)) {
                allow
            } else {
                Some(Decision::Deny(format!(
                    "node {node:?} is not allowed to modify node {:?}",
                    a.name
                )))
            }
        }
        ("", "pods", "") if is_read(v) => allow,
        ("", "pods", "") if v == "create" => allow,
        ("", "services" | "endpoints", "") if is_read(v) => allow,
        ("" | "events.k8s.io", "events", "") if matches!(v, "create" | "update" | "patch") => allow,
        ("coordination.k8s.io", "leases", "") => {
            if a.namespace == LEASE_NAMESPACE
                && matches!(v, "get" | "create" | "update" | "patch" | "delete")
                && (a.name == node || (v == "create" && a.name.is_empty()))
            {
                allow
            } else {
                Some(Decision::Deny(format!(
                    "node {node:?} can only access its own lease in namespace {LEASE_NAMESPACE}"
                )))
            }
        }
        _ => None,
    }
}

async fn get_pod(store: &dyn Store, ns: &str, name: &str) -> ApiResult<Option<Value>> {
    let key = by_kind(Kind::Pod).key(Some(ns), name);
    match store.get(&key).await? {
        None => Ok(None),
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("decoding {key}: {e}"))),
    }
}

/// Allow when a pod of `ns` bound to `node` satisfies `wanted`, else deny: the node has no business with
/// the object.
async fn related(
    store: &dyn Store,
    ns: &str,
    node: &str,
    wanted: impl Fn(&Value) -> bool,
) -> ApiResult<Option<Decision>> {
    let (pods, _) = store.list(&by_kind(Kind::Pod).prefix(Some(ns))).await?;
    for kv in pods {
        let Ok(p) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        if bound_to(&p, node) && wanted(&p) {
            return Ok(Some(Decision::Allow));
        }
    }
    Ok(Some(no_relationship(node)))
}

/// The denial for an object the node has no business with.
fn no_relationship(node: &str) -> Decision {
    Decision::Deny(format!(
        "no relationship found between node {node:?} and this object"
    ))
}

fn bound_to(pod: &Value, node: &str) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
}

/// Whether a pod spec names the object `name` of `resource` (secrets, configmaps, persistentvolumeclaims).
pub fn pod_references(pod: &Value, resource: &str, name: &str) -> bool {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let eq = |v: Option<&Value>| v.and_then(Value::as_str) == Some(name);
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten();
    let volumes = spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let projected = |kind: &str| {
        volumes.iter().any(|v| {
            v.pointer("/projected/sources")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .any(|src| eq(src.pointer(&format!("/{kind}/name"))))
                })
        })
    };
    match resource {
        "secrets" => {
            spec.get("imagePullSecrets")
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|s| eq(s.get("name"))))
                || volumes.iter().any(|v| eq(v.pointer("/secret/secretName")))
                || projected("secret")
                || containers
                    .into_iter()
                    .any(|c| env_refs(c, "secretKeyRef", "secretRef").any(|n| n == name))
        }
        "configmaps" => {
            volumes.iter().any(|v| eq(v.pointer("/configMap/name")))
                || projected("configMap")
                || containers
                    .into_iter()
                    .any(|c| env_refs(c, "configMapKeyRef", "configMapRef").any(|n| n == name))
        }
        "persistentvolumeclaims" => volumes.iter().any(|v| {
            eq(v.pointer("/persistentVolumeClaim/claimName"))
                || ephemeral_claim(pod, v).as_deref() == Some(name)
        }),
        _ => false,
    }
}

/// The claim of a generic ephemeral volume of `pod` (`<pod>-<volume>`, as kube's node graph has it;
/// whether the pod owns it is for the reader to check).
fn ephemeral_claim(pod: &Value, volume: &Value) -> Option<String> {
    volume.get("ephemeral").filter(|e| !e.is_null())?;
    let pod_name = pod.pointer("/metadata/name").and_then(Value::as_str)?;
    let volume_name = volume.get("name").and_then(Value::as_str)?;
    Some(crate::resources::pod::ephemeral::claim_name(
        pod_name,
        volume_name,
    ))
}

/// The claims a pod's volumes name: `persistentVolumeClaim.claimName` and generic ephemeral volumes'.
fn pod_claims(pod: &Value) -> Vec<String> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| ephemeral_claim(pod, v))
        })
        .collect()
}

/// Names referenced by `env[].valueFrom.<key_ref>` and `envFrom[].<from_ref>` of one container.
fn env_refs<'a>(
    c: &'a Value,
    key_ref: &'a str,
    from_ref: &'a str,
) -> impl Iterator<Item = &'a str> {
    let env = c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(move |e| e.pointer(&format!("/valueFrom/{key_ref}/name")));
    let env_from = c
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(move |e| e.pointer(&format!("/{from_ref}/name")));
    env.chain(env_from).filter_map(Value::as_str)
}

/// The stored Node a node credential is about to update or patch (for NodeRestriction).
pub async fn stored_node(store: &dyn Store, name: &str) -> ApiResult<Option<Value>> {
    let key = by_kind(Kind::Node).key(None, name);
    match store.get(&key).await? {
        None => Ok(None),
        Some(kv) => serde_json::from_slice(&kv.value)
            .map(Some)
            .map_err(|e| ApiError::internal(format!("decoding {key}: {e}"))),
    }
}

/// The Node authorizer. `None` = no opinion.
pub async fn authorize(
    store: &dyn Store,
    node: &str,
    a: &Attributes,
) -> ApiResult<Option<Decision>> {
    if !a.resource_request {
        return Ok(None);
    }
    if let Some(d) = static_decision(node, a) {
        return Ok(Some(d));
    }
    let v = a.verb.as_str();
    match (
        a.api_group.as_str(),
        a.resource.as_str(),
        a.subresource.as_str(),
    ) {
        ("", "pods", sub @ ("" | "status")) if !a.name.is_empty() => {
            let writes: &[&str] = if sub == "status" {
                &["get", "update", "patch"]
            } else {
                &["delete"]
            };
            if !writes.contains(&v) {
                return Ok(Some(Decision::Deny(format!(
                    "node {node:?} can only update the status of and delete pods bound to it"
                ))));
            }
            match get_pod(store, &a.namespace, &a.name).await? {
                // Let the handler answer 404.
                None => Ok(Some(Decision::Allow)),
                Some(p) if bound_to(&p, node) => Ok(Some(Decision::Allow)),
                Some(_) => Ok(Some(Decision::Deny(format!(
                    "no relationship found between node {node:?} and this object"
                )))),
            }
        }
        ("", "serviceaccounts", "token") => {
            if v != "create" || a.name.is_empty() {
                return Ok(Some(Decision::Deny(
                    "can only create tokens for individual service accounts".to_string(),
                )));
            }
            related(store, &a.namespace, node, |p| {
                pod_service_account(p) == a.name
            })
            .await
        }
        ("", "persistentvolumes", "") => {
            if v != "get" || a.name.is_empty() {
                return Ok(Some(Decision::Deny(format!(
                    "node {node:?} can only get individual persistentvolumes used by pods bound to it"
                ))));
            }
            volumes::authorize_get(store, node, &a.name).await.map(Some)
        }
        ("", res @ ("secrets" | "configmaps" | "persistentvolumeclaims"), "") => {
            if v != "get" || a.name.is_empty() {
                return Ok(Some(Decision::Deny(format!(
                    "node {node:?} can only get individual {res} referenced by pods bound to it"
                ))));
            }
            related(store, &a.namespace, node, |p| {
                pod_references(p, res, &a.name)
            })
            .await
        }
        _ => Ok(None),
    }
}

fn restricted(labels: Option<&Value>) -> BTreeMap<String, Value> {
    labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with(RESTRICTED_LABEL_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a write changes (adds, removes or alters) `node-restriction.kubernetes.io/` labels. `object` is
/// the decoded body (a whole Node for create/update; a merge/strategic/apply patch object or a JSON patch
/// array for patch); `old` the stored Node.
fn changes_restricted_labels(verb: &str, object: Option<&Value>, old: Option<&Value>) -> bool {
    let before = restricted(old.and_then(|o| o.pointer("/metadata/labels")));
    match (verb, object) {
        ("create" | "update", Some(o)) => restricted(o.pointer("/metadata/labels")) != before,
        ("patch", Some(Value::Array(ops))) => ops.iter().any(|op| {
            let path = op.get("path").and_then(Value::as_str).unwrap_or("");
            let escaped = RESTRICTED_LABEL_PREFIX.replace('/', "~1");
            path.starts_with(&format!("/metadata/labels/{escaped}"))
                || (matches!(path, "" | "/" | "/metadata" | "/metadata/labels")
                    && (!before.is_empty() || op.to_string().contains(RESTRICTED_LABEL_PREFIX)))
        }),
        ("patch", Some(o)) => {
            if o.pointer("/metadata/labels").is_some_and(Value::is_null) {
                return !before.is_empty();
            }
            restricted(o.pointer("/metadata/labels"))
                .iter()
                .any(|(k, v)| match before.get(k) {
                    Some(b) => b != v,
                    None => !v.is_null(),
                })
        }
        _ => false,
    }
}

/// NodeRestriction admission for an allowed request. `object` is the decoded request body of a write;
/// `old_node` the stored Node for node updates and patches. Returns the reason to forbid, if any.
pub fn admit(
    node: &str,
    a: &Attributes,
    object: Option<&Value>,
    old_node: Option<&Value>,
) -> Option<String> {
    let name_of = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match (a.api_group.as_str(), a.resource.as_str(), a.verb.as_str()) {
        ("", "nodes", "create" | "update" | "patch") => {
            if a.verb == "create" {
                let n = object.map(name_of).unwrap_or_default();
                if n != node {
                    return Some(format!("node {node:?} is not allowed to modify node {n:?}"));
                }
            }
            if changes_restricted_labels(&a.verb, object, old_node) {
                return Some(format!(
                    "is not allowed to modify labels: node {node:?} may not set labels with the prefix {RESTRICTED_LABEL_PREFIX:?}"
                ));
            }
            None
        }
        ("", "pods", "create") if a.subresource.is_empty() => {
            let Some(pod) = object else {
                return Some(format!("node {node:?} can only create mirror pods"));
            };
            if pod
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    MIRROR_ANNOTATION.replace('/', "~1")
                ))
                .is_none()
            {
                return Some(format!(
                    "pod does not have {MIRROR_ANNOTATION:?} annotation, node {node:?} can only create mirror pods"
                ));
            }
            if !bound_to(pod, node) {
                return Some(format!(
                    "node {node:?} can only create pods with spec.nodeName set to itself"
                ));
            }
            None
        }
        ("coordination.k8s.io", "leases", "create") => {
            let n = object.map(name_of).unwrap_or_default();
            (n != node).then(|| {
                format!(
                    "can only access node lease with the same name as the requesting node {node:?}"
                )
            })
        }
        _ => None,
    }
}

/// NodeRestriction for a node's TokenRequest (`create serviceaccounts/token`): the token must be bound to a
/// pod (`boundObjectRef {kind: Pod, apiVersion: v1, name, uid}`) that exists with that uid and is bound to
/// this node. Returns the reason to forbid; a missing pod is a 404 as in kube-apiserver.
pub async fn admit_token_request(
    store: &dyn Store,
    node: &str,
    a: &Attributes,
    object: Option<&Value>,
) -> ApiResult<Option<String>> {
    let r = object.and_then(|o| o.pointer("/spec/boundObjectRef"));
    let field = |k: &str| {
        r.and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    if r.is_none()
        || field("apiVersion") != "v1"
        || field("kind") != "Pod"
        || field("name").is_empty()
    {
        return Ok(Some("node requested token not bound to a pod".to_string()));
    }
    if field("uid").is_empty() {
        return Ok(Some(
            "node requested token with a pod binding without a uid".to_string(),
        ));
    }
    let Some(pod) = get_pod(store, &a.namespace, field("name")).await? else {
        return Err(ApiError::not_found("", "pods", field("name")));
    };
    if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(field("uid")) {
        return Ok(Some(format!(
            "the UID in the bound object reference ({}) does not match the UID in record. The object might have been deleted and then recreated",
            field("uid")
        )));
    }
    if !bound_to(&pod, node) {
        return Ok(Some(
            "node requested token bound to a pod scheduled on a different node".to_string(),
        ));
    }
    Ok(None)
}
