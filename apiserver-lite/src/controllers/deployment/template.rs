//! A Deployment's ReplicaSets by template: the `pod-template-hash`, which ReplicaSet is the new one, and
//! the annotations the controller keeps on them (kube's `deployment/util`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::super::owners::{self, str_at};

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// kube's `maxRevHistoryLengthInChars`.
const MAX_HISTORY_CHARS: usize = 2000;

/// Annotations of the Deployment that are not copied to its ReplicaSets.
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// kube's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Remove what Go's semantic equality does not see: nulls, empty maps and lists (nil and empty are
/// equal there), and a template's zero `generation` and null `creationTimestamp` (kubectl sends them).
fn semantic(template: &Value) -> Value {
    fn prune(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.values_mut().for_each(prune);
                m.retain(|_, x| match x {
                    Value::Null => false,
                    Value::Object(o) => !o.is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => true,
                });
            }
            Value::Array(a) => a.iter_mut().for_each(prune),
            _ => {}
        }
    }
    let mut t = template.clone();
    strip_nulls(&mut t);
    if let Some(meta) = t.get_mut("metadata").and_then(Value::as_object_mut) {
        if meta.get("generation").and_then(Value::as_i64) == Some(0) {
            meta.remove("generation");
        }
        meta.remove("creationTimestamp");
    }
    prune(&mut t);
    t
}

/// JSON with object keys sorted, whatever the map type, so the hash does not depend on field order.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The `pod-template-hash` of a pod template (kube's `ComputeHash`): FNV-1a (32 bit) over the template,
/// then over `collisionCount` (little-endian u32) when set, rendered in decimal and mapped through the
/// safe alphabet.
pub fn pod_template_hash(template: &Value, collision_count: Option<i64>) -> String {
    let t = semantic(template);
    let mut text = String::new();
    canonical(&t, &mut text);
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(text.as_bytes());
    if let Some(count) = collision_count {
        feed(&(count as u32).to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// A template without the hash label and without nulls, for comparing (kube's `EqualIgnoreHash`).
///
/// Both sides get the template defaults first, as kube's do when read from etcd: a ReplicaSet stored
/// before a default was added still matches its Deployment's template once an update has defaulted it,
/// instead of starting a rollout.
fn without_hash(template: Option<&Value>) -> Value {
    let mut t = template.cloned().unwrap_or(Value::Null);
    crate::resources::workloads::default_template(&mut t);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    semantic(&t)
}

pub fn equal_ignore_hash(a: Option<&Value>, b: Option<&Value>) -> bool {
    without_hash(a) == without_hash(b)
}

pub fn revision(rs: &Value) -> i64 {
    str_at(
        rs,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    )
    .parse()
    .unwrap_or(0)
}

pub fn annotation_int(rs: &Value, key: &str) -> Option<i64> {
    rs.pointer("/metadata/annotations")?
        .get(key)?
        .as_str()?
        .parse()
        .ok()
}

fn annotations_mut(object: &mut Value) -> Option<&mut Map<String, Value>> {
    let meta = super::super::object::child(object, "metadata")?;
    let slot = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

/// Set the desired/max replica annotations; whether anything changed.
pub fn set_replicas_annotations(rs: &mut Value, desired: i64, max: i64) -> bool {
    let Some(annotations) = annotations_mut(rs) else {
        return false;
    };
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = Value::String(value.to_string());
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// kube's `SetNewReplicaSetAnnotations`: the Deployment's annotations, and `revision` unless the
/// ReplicaSet already has a higher one; a reused ReplicaSet keeps its former revisions in
/// `revision-history`. Whether anything changed.
pub fn set_new_rs_annotations(d: &Value, rs: &mut Value, revision: i64, exists: bool) -> bool {
    let desired = owners::int_at(d, "/spec/replicas").unwrap_or(1);
    let max = desired + super::rollout::max_surge(d);
    let d_annotations = owners::labels_at(d, "/metadata/annotations");
    let Some(annotations) = annotations_mut(rs) else {
        return false;
    };
    let mut changed = false;
    for (k, v) in d_annotations {
        if skip_copy(&k) || annotations.get(&k).and_then(Value::as_str) == Some(v.as_str()) {
            continue;
        }
        annotations.insert(k, Value::String(v));
        changed = true;
    }
    let old = annotations
        .get(REVISION)
        .and_then(Value::as_str)
        .map(str::to_string);
    let old_int = match old.as_deref().map(str::parse::<i64>) {
        None => 0,
        Some(Ok(n)) => n,
        // kube leaves a ReplicaSet with an unreadable revision alone.
        Some(Err(_)) => return changed,
    };
    if old_int < revision {
        annotations.insert(REVISION.into(), Value::String(revision.to_string()));
        changed = true;
        if let Some(old) = old {
            let history = annotations
                .get(REVISION_HISTORY)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let next = if history.is_empty() {
                old
            } else {
                let mut parts: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > MAX_HISTORY_CHARS && start < parts.len() {
                    total -= parts[start].len() + 1;
                    start += 1;
                }
                parts.drain(..start);
                parts.push(&old);
                parts.join(",")
            };
            annotations.insert(REVISION_HISTORY.into(), Value::String(next));
        }
    }
    if !exists && set_replicas_annotations(rs, desired, max) {
        changed = true;
    }
    changed
}

/// The new ReplicaSet of `d` (not yet stored): `<deployment>-<hash>`, the template with the hash label
/// added to its labels, selector and template labels, and the Deployment as controller.
pub fn new_replica_set(d: &Value, hash: &str, replicas: i64, revision: i64) -> Value {
    let mut template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    if let Some(meta) = super::super::object::child(&mut template, "metadata") {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(HASH_LABEL.into(), hash.into());
        }
    }
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    if let Some(m) = selector.as_object_mut() {
        let labels = m
            .entry("matchLabels")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(HASH_LABEL.into(), hash.into());
        }
    }
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", str_at(d, "/metadata/name")),
            "namespace": str_at(d, "/metadata/namespace"),
            "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
            "ownerReferences": [owners::controller_owner_ref(d)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": owners::int_at(d, "/spec/minReadySeconds").unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    });
    set_new_rs_annotations(d, &mut rs, revision, false);
    rs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid",
                         "annotations": {"kubernetes.io/change-cause": "v1", REVISION: "4"}},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}})
    }

    #[test]
    fn hash_is_stable_safe_and_changes_with_template_and_collisions() {
        let d = deployment();
        let t = d.pointer("/spec/template").expect("template");
        let h = pod_template_hash(t, None);
        assert!(!h.is_empty() && h.len() <= 10);
        assert!(h.bytes().all(|b| SAFE.contains(&b)));
        // Field order and nulls do not matter.
        let reordered: Value = serde_json::from_str(
            r#"{"spec": {"containers": [{"image": "nginx:1", "name": "c", "x": null}]},
                "metadata": {"labels": {"app": "web"}}}"#,
        )
        .expect("json");
        assert_eq!(pod_template_hash(&reordered, None), h);
        let mut changed = t.clone();
        changed["spec"]["containers"][0]["image"] = json!("nginx:2");
        assert_ne!(pod_template_hash(&changed, None), h);
        assert_ne!(pod_template_hash(t, Some(1)), h);
        // What kubectl sends and Go's equality ignores does not count either.
        let mut noisy = t.clone();
        noisy["metadata"]["generation"] = json!(0);
        noisy["metadata"]["creationTimestamp"] = Value::Null;
        noisy["spec"]["securityContext"] = json!({});
        assert_eq!(pod_template_hash(&noisy, None), h);
        assert!(equal_ignore_hash(Some(&noisy), Some(t)));
        // A template stored before a default existed matches its defaulted self.
        let mut old = t.clone();
        old["spec"]["volumes"] = json!([{"name": "cfg", "configMap": {"name": "c"}}]);
        let mut defaulted = old.clone();
        crate::resources::workloads::default_template(&mut defaulted);
        assert_eq!(
            defaulted["spec"]["volumes"][0]["configMap"]["defaultMode"],
            420
        );
        assert!(equal_ignore_hash(Some(&old), Some(&defaulted)));
        assert_eq!(pod_template_hash(t, Some(1)), pod_template_hash(t, Some(1)));
    }

    #[test]
    fn new_replica_set_carries_hash_owner_and_annotations() {
        let d = deployment();
        let rs = new_replica_set(&d, "abc", 2, 5);
        assert_eq!(rs["metadata"]["name"], "web-abc");
        assert_eq!(rs["metadata"]["labels"][HASH_LABEL], "abc");
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH_LABEL], "abc");
        assert_eq!(rs["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL],
            "abc"
        );
        assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);
        let a = &rs["metadata"]["annotations"];
        assert_eq!(a[REVISION], "5");
        assert_eq!(a[DESIRED_REPLICAS], "4");
        assert_eq!(a[MAX_REPLICAS], "5");
        assert_eq!(a["kubernetes.io/change-cause"], "v1");
        assert!(equal_ignore_hash(
            rs.pointer("/spec/template"),
            d.pointer("/spec/template")
        ));
    }

    #[test]
    fn reused_replica_set_keeps_revision_history() {
        let d = deployment();
        let mut rs = new_replica_set(&d, "abc", 2, 1);
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        assert_eq!(rs["metadata"]["annotations"][REVISION], "3");
        assert_eq!(rs["metadata"]["annotations"][REVISION_HISTORY], "1");
        assert!(set_new_rs_annotations(&d, &mut rs, 5, true));
        assert_eq!(rs["metadata"]["annotations"][REVISION_HISTORY], "1,3");
        // Never lowered, and nothing to do the second time.
        assert!(!set_new_rs_annotations(&d, &mut rs, 4, true));
        assert_eq!(revision(&rs), 5);
    }
}
