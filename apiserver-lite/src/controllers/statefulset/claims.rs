//! The PersistentVolumeClaims of a StatefulSet's pods, decided without IO (kube's
//! `getPersistentVolumeClaims`, `updateStorage` and the retention-policy helpers of
//! `stateful_set_utils.go`, 1.32, where `StatefulSetAutoDeletePVC` is GA):
//!
//! - the pod of ordinal N gets, for each claim template `t`, the claim `t-<set>-N` (labels: the
//!   template's plus the set's `selector.matchLabels`) and the volume `{name: t, persistentVolumeClaim:
//!   {claimName: t-<set>-N}}`, which replaces a template volume of that name;
//! - `persistentVolumeClaimRetentionPolicy`: `whenDeleted: Delete` makes the set the claims' controller,
//!   `whenScaled: Delete` makes a condemned pod (its ordinal out of range) the controller of its claims,
//!   so the garbage collector deletes them with it; `Retain` (the default) leaves no reference. The set
//!   and pod references are `controller: true, blockOwnerDeletion: true`; a claim controlled by someone
//!   else, or referring to an older set or pod of the same name, is left alone.

use serde_json::{Map, Value, json};

use crate::controllers::owners::str_at;

/// The set's `persistentVolumeClaimRetentionPolicy`; anything but `Delete` retains (kube treats an
/// unknown policy as `Retain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub delete_when_deleted: bool,
    pub delete_when_scaled: bool,
}

pub fn policy(set: &Value) -> Policy {
    let delete = |field: &str| {
        str_at(
            set,
            &format!("/spec/persistentVolumeClaimRetentionPolicy/{field}"),
        ) == "Delete"
    };
    Policy {
        delete_when_deleted: delete("whenDeleted"),
        delete_when_scaled: delete("whenScaled"),
    }
}

/// The set's claim templates that have a name.
pub fn templates(set: &Value) -> Vec<&Value> {
    set.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .map(|t| {
            t.iter()
                .filter(|t| !str_at(t, "/metadata/name").is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// kube's `getPersistentVolumeClaimName`: `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set: &str, ordinal: i64) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The names of the claims of the pod of `ordinal`, in template order.
pub fn claim_names(set: &Value, ordinal: i64) -> Vec<String> {
    let set_name = str_at(set, "/metadata/name");
    templates(set)
        .iter()
        .map(|t| claim_name(str_at(t, "/metadata/name"), set_name, ordinal))
        .collect()
}

/// Whether the claim `claim` belongs to the set `set_name` with these template names (some template
/// `t` and ordinal `n` make it `t-<set>-n`).
pub fn is_claim_of(claim: &str, set_name: &str, template_names: &[&str]) -> bool {
    template_names.iter().any(|t| {
        claim
            .strip_prefix(t)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_prefix(set_name))
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The claim of `template` for the pod of `ordinal` (kube's `getPersistentVolumeClaims`): the template's
/// labels, annotations and spec, the set's `matchLabels` over the labels; no class when the template has
/// none (admission gives it the default class). Owner references as [`owner_refs`] wants them for a pod
/// in range (the pod is not made yet).
pub fn new_claim(set: &Value, template: &Value, ordinal: i64) -> Value {
    let set_name = str_at(set, "/metadata/name");
    let name = claim_name(str_at(template, "/metadata/name"), set_name, ordinal);
    let mut labels = template
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(selector) = set
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        labels.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    meta.insert(
        "namespace".into(),
        json!(str_at(set, "/metadata/namespace")),
    );
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if let Some(annotations) = template
        .pointer("/metadata/annotations")
        .filter(|a| a.as_object().is_some_and(|a| !a.is_empty()))
    {
        meta.insert("annotations".into(), annotations.clone());
    }
    let pod_name = format!("{set_name}-{ordinal}");
    let claim = json!({"metadata": {}});
    let refs = owner_refs(&claim, set, &PodRef::new(&pod_name, ""), false);
    if !refs.is_empty() {
        meta.insert("ownerReferences".into(), Value::Array(refs));
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
    })
}

/// kube's `updateStorage`: the pod's volumes are one claim volume per template followed by its own
/// volumes of other names.
pub fn add_volumes(set: &Value, pod: &mut Value, ordinal: i64) {
    let set_name = str_at(set, "/metadata/name").to_string();
    let names: Vec<String> = templates(set)
        .iter()
        .map(|t| str_at(t, "/metadata/name").to_string())
        .collect();
    if names.is_empty() {
        return;
    }
    let mut volumes: Vec<Value> = names
        .iter()
        .map(|t| {
            json!({"name": t, "persistentVolumeClaim": {
                "claimName": claim_name(t, &set_name, ordinal)}})
        })
        .collect();
    if let Some(own) = pod.pointer("/spec/volumes").and_then(Value::as_array) {
        volumes.extend(
            own.iter()
                .filter(|v| !names.iter().any(|n| Some(n.as_str()) == v["name"].as_str()))
                .cloned(),
        );
    }
    if pod.get("spec").is_none_or(|s| !s.is_object()) {
        pod["spec"] = json!({});
    }
    pod["spec"]["volumes"] = Value::Array(volumes);
}

/// A pod of the set as an owner: its name and uid (empty before it is made).
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub name: &'a str,
    pub uid: &'a str,
}

impl<'a> PodRef<'a> {
    pub fn new(name: &'a str, uid: &'a str) -> PodRef<'a> {
        PodRef { name, uid }
    }
}

/// An owner as kube's `matchesRef` sees it: group/version, kind, name, and its uid.
struct Owner<'a> {
    api_version: &'a str,
    kind: &'a str,
    name: &'a str,
    uid: &'a str,
}

impl Owner<'_> {
    fn matches(&self, r: &Value) -> bool {
        str_at(r, "/apiVersion") == self.api_version
            && str_at(r, "/kind") == self.kind
            && str_at(r, "/name") == self.name
    }

    fn controller_ref(&self) -> Value {
        json!({"apiVersion": self.api_version, "kind": self.kind, "name": self.name,
            "uid": self.uid, "controller": true, "blockOwnerDeletion": true})
    }
}

fn set_owner(set: &Value) -> Owner<'_> {
    Owner {
        api_version: "apps/v1",
        kind: "StatefulSet",
        name: str_at(set, "/metadata/name"),
        uid: str_at(set, "/metadata/uid"),
    }
}

fn pod_owner<'a>(pod: &PodRef<'a>) -> Owner<'a> {
    Owner {
        api_version: "v1",
        kind: "Pod",
        name: pod.name,
        uid: pod.uid,
    }
}

fn refs(claim: &Value) -> &[Value] {
    claim
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn is_controller(r: &Value) -> bool {
    r.get("controller").and_then(Value::as_bool) == Some(true)
}

/// kube's `hasOwnerRef`: some reference has the owner's uid.
fn has_ref(claim: &Value, owner: &Owner) -> bool {
    !owner.uid.is_empty() && refs(claim).iter().any(|r| str_at(r, "/uid") == owner.uid)
}

/// kube's `hasStaleOwnerRef`: the first reference to the owner's name and kind has another uid.
fn has_stale_ref(claim: &Value, owner: &Owner) -> bool {
    refs(claim)
        .iter()
        .find(|r| owner.matches(r))
        .is_some_and(|r| str_at(r, "/uid") != owner.uid)
}

/// kube's `hasUnexpectedController`: with a `Delete` policy, another controller (or a reference to an
/// older set or pod of these names) means the claim is not the set's to manage.
fn has_unexpected_controller(claim: &Value, set: &Owner, pod: &Owner, policy: Policy) -> bool {
    if !policy.delete_when_deleted && !policy.delete_when_scaled {
        return false;
    }
    refs(claim).iter().any(|r| {
        if set.matches(r) {
            str_at(r, "/uid") != set.uid
        } else if pod.matches(r) {
            str_at(r, "/uid") != pod.uid
        } else {
            is_controller(r)
        }
    })
}

/// kube's `hasNonControllerOwner`: the set or pod refers to the claim without being its controller.
fn has_non_controller_owner(claim: &Value, set: &Owner, pod: &Owner) -> bool {
    refs(claim).iter().any(|r| {
        let uid = str_at(r, "/uid");
        (uid == set.uid || (!pod.uid.is_empty() && uid == pod.uid)) && !is_controller(r)
    })
}

/// kube's `isClaimOwnerUpToDate`: whether the claim's references already follow the set's retention
/// policy for `pod` (`scaled_down`: its ordinal is out of the set's range). Claims in a state the set
/// does not own (stale references, another controller) count as up to date: they are not touched.
pub fn owner_up_to_date(claim: &Value, set: &Value, pod: &PodRef, scaled_down: bool) -> bool {
    let (s, p) = (set_owner(set), pod_owner(pod));
    if has_stale_ref(claim, &s) || has_stale_ref(claim, &p) {
        return true;
    }
    let policy = policy(set);
    if has_unexpected_controller(claim, &s, &p, policy) {
        return !(has_ref(claim, &s) || has_ref(claim, &p));
    }
    if has_non_controller_owner(claim, &s, &p) {
        return false;
    }
    let (set_ref, pod_ref) = (has_ref(claim, &s), has_ref(claim, &p));
    match (policy.delete_when_scaled, policy.delete_when_deleted) {
        (false, false) => !set_ref && !pod_ref,
        (false, true) => set_ref && !pod_ref,
        (true, false) => !set_ref && scaled_down == pod_ref,
        (true, true) => scaled_down != set_ref && scaled_down == pod_ref,
    }
}

/// kube's `updateClaimOwnerRefForSetAndPod`: the claim's references with those to the set and pod
/// replaced by what the policy asks for (none while another controller holds the claim).
pub fn owner_refs(claim: &Value, set: &Value, pod: &PodRef, scaled_down: bool) -> Vec<Value> {
    let (s, p) = (set_owner(set), pod_owner(pod));
    let policy = policy(set);
    let unexpected = has_unexpected_controller(claim, &s, &p, policy);
    let mut out: Vec<Value> = refs(claim)
        .iter()
        .filter(|r| !s.matches(r) && !p.matches(r))
        .cloned()
        .collect();
    if unexpected {
        return out;
    }
    let owner = match (policy.delete_when_scaled, policy.delete_when_deleted) {
        (false, false) => None,
        (false, true) => Some(s),
        (true, _) if scaled_down => Some(p),
        (true, true) => Some(s),
        (true, false) => None,
    };
    if let Some(owner) = owner.filter(|o| !o.uid.is_empty()) {
        out.push(owner.controller_ref());
    }
    out
}

/// kube's `PodClaimIsStale` for one claim of a pod about to be made: with `whenScaled: Delete`, a claim
/// still referring to a pod of this name (an earlier one, scaled down and not yet collected) must go
/// before the new pod may use its name.
pub fn claim_is_stale(claim: &Value, set: &Value, pod_name: &str) -> bool {
    policy(set).delete_when_scaled && has_stale_ref(claim, &pod_owner(&PodRef::new(pod_name, "")))
}

#[cfg(test)]
mod tests;
