//! Defaults (kube's `SetDefaults_PersistentVolume`, `SetDefaults_PersistentVolumeClaimSpec`,
//! `SetDefaults_StorageClass`) and what the create and status strategies do to the status.

use serde_json::{Map, Value, json};

use super::Kind;

/// Set `key` when it is absent or null (kube defaults nil pointers; an explicit value stays).
fn default_nil(obj: &mut Map<String, Value>, key: &str, v: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj.insert(key.to_string(), v);
    }
}

/// Set `key` when it is absent, null or "" (kube defaults empty strings).
fn default_empty(obj: &mut Map<String, Value>, key: &str, v: Value) {
    if obj
        .get(key)
        .is_none_or(|x| x.is_null() || x.as_str() == Some(""))
    {
        obj.insert(key.to_string(), v);
    }
}

fn spec(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    obj.get_mut("spec").and_then(Value::as_object_mut)
}

/// The defaults every written version gets.
pub fn apply(kind: Kind, obj: &mut Value) {
    match kind {
        Kind::PersistentVolume => {
            let Some(spec) = spec(obj) else { return };
            default_empty(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
            default_nil(spec, "volumeMode", json!("Filesystem"));
            // `SetDefaults_HostPathVolumeSource`: a missing type is the explicit "" (no checks).
            if let Some(hp) = spec.get_mut("hostPath").and_then(Value::as_object_mut) {
                default_nil(hp, "type", json!(""));
            }
        }
        Kind::PersistentVolumeClaim => {
            let Some(spec) = spec(obj) else { return };
            default_nil(spec, "volumeMode", json!("Filesystem"));
        }
        Kind::StorageClass => {
            let Some(m) = obj.as_object_mut() else { return };
            default_nil(m, "reclaimPolicy", json!("Delete"));
            default_nil(m, "volumeBindingMode", json!("Immediate"));
        }
        _ => {}
    }
}

/// Create: the defaults, and the status the create strategies start with (whatever the client sent):
/// a volume is `Pending` since now, a claim `Pending`. `volumeAttributesClassName` is dropped, as kube
/// does with the VolumeAttributesClass gate off (its 1.32 default).
pub fn prepare_create(kind: Kind, obj: &mut Value, now: &str) {
    apply(kind, obj);
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("volumeAttributesClassName");
    }
    match kind {
        Kind::PersistentVolume => {
            obj["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": now});
        }
        Kind::PersistentVolumeClaim => obj["status"] = json!({"phase": "Pending"}),
        _ => {}
    }
}

/// Update of the main resource: the defaults; a `volumeAttributesClassName` the stored object does not have
/// is dropped (the gate is off).
pub fn prepare_update(kind: Kind, old: &Value, new: &mut Value) {
    apply(kind, new);
    if old.pointer("/spec/volumeAttributesClassName").is_none()
        && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("volumeAttributesClassName");
    }
}

/// The status strategy of PersistentVolumes: `lastPhaseTransitionTime` follows phase changes unless the
/// writer set a new one (kube's `PersistentVolumeLastPhaseTransitionTime`, GA in 1.31).
pub fn status_update(kind: Kind, cur: &Value, new: &mut Value, now: &str) {
    if kind != Kind::PersistentVolume {
        return;
    }
    let phase = |v: &Value| v.pointer("/status/phase").cloned();
    let time = |v: &Value| {
        v.pointer("/status/lastPhaseTransitionTime")
            .filter(|t| !t.is_null())
            .cloned()
    };
    let (old_time, new_time) = (time(cur), time(new));
    let stamp = if phase(cur) == phase(new) {
        new_time.is_none().then_some(old_time).flatten()
    } else if new_time.is_none() || new_time == old_time {
        Some(json!(now))
    } else {
        None
    };
    if let Some(t) = stamp {
        if new.get("status").is_none_or(|s| !s.is_object()) {
            new["status"] = json!({});
        }
        new["status"]["lastPhaseTransitionTime"] = t;
    }
}
