//! Table columns and cells of the storage kinds (kube 1.32's `printPersistentVolume`,
//! `printPersistentVolumeClaim` and `printStorageClass`).

use serde_json::{Value, json};

use super::{Kind, claim_class, is_default_class, volume_class};

fn col(name: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": "string", "format": "", "description": desc, "priority": priority})
}

pub fn columns(kind: Kind, name: Value, age: Value) -> Vec<Value> {
    match kind {
        Kind::PersistentVolume => vec![
            name,
            col(
                "Capacity",
                "capacity is the description of the persistent volume's resources and capacity.",
                0,
            ),
            col(
                "Access Modes",
                "accessModes contains all ways the volume can be mounted.",
                0,
            ),
            col(
                "Reclaim Policy",
                "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
                0,
            ),
            col(
                "Status",
                "phase indicates if a volume is available, bound to a claim, or released by a claim.",
                0,
            ),
            col(
                "Claim",
                "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
                0,
            ),
            col("StorageClass", "StorageClass of the pv", 0),
            col(
                "VolumeAttributesClass",
                "VolumeAttributesClass of the pv",
                0,
            ),
            col(
                "Reason",
                "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
                0,
            ),
            age,
            col(
                "VolumeMode",
                "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
                1,
            ),
        ],
        Kind::PersistentVolumeClaim => vec![
            name,
            col(
                "Status",
                "phase represents the current phase of PersistentVolumeClaim.",
                0,
            ),
            col(
                "Volume",
                "volumeName is the binding reference to the PersistentVolume backing this claim.",
                0,
            ),
            col(
                "Capacity",
                "capacity represents the actual resources of the underlying volume.",
                0,
            ),
            col(
                "Access Modes",
                "accessModes contains the actual access modes the volume backing the PVC has.",
                0,
            ),
            col("StorageClass", "StorageClass of the pvc", 0),
            col(
                "VolumeAttributesClass",
                "VolumeAttributesClass of the pvc",
                0,
            ),
            age,
            col(
                "VolumeMode",
                "volumeMode defines what type of volume is required by the claim.",
                1,
            ),
        ],
        _ => vec![
            name,
            col(
                "Provisioner",
                "provisioner indicates the type of the provisioner.",
                0,
            ),
            col(
                "ReclaimPolicy",
                "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.",
                0,
            ),
            col(
                "VolumeBindingMode",
                "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.",
                0,
            ),
            col(
                "AllowVolumeExpansion",
                "allowVolumeExpansion shows whether the storage class allow volume expand.",
                0,
            ),
            age,
        ],
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

/// kubectl's short access modes, in kube's order (`RWO,ROX,RWX,RWOP`).
pub fn access_modes(modes: Option<&Value>) -> String {
    let modes: Vec<&str> = modes
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(long, _)| modes.contains(long))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A pointer field kube prints as `<unset>` when nil.
fn or_unset(obj: &Value, p: &str) -> String {
    obj.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or("<unset>")
        .to_string()
}

/// `Terminating` while a deletion is pending, else the status phase.
fn phase(obj: &Value) -> &str {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        "Terminating"
    } else {
        s(obj, "/status/phase")
    }
}

pub fn cells(kind: Kind, obj: &Value, name: String, age: String) -> Vec<Value> {
    match kind {
        Kind::PersistentVolume => {
            let claim = if obj.pointer("/spec/claimRef").is_some_and(Value::is_object) {
                format!(
                    "{}/{}",
                    s(obj, "/spec/claimRef/namespace"),
                    s(obj, "/spec/claimRef/name")
                )
            } else {
                String::new()
            };
            vec![
                json!(name),
                json!(s(obj, "/spec/capacity/storage")),
                json!(access_modes(obj.pointer("/spec/accessModes"))),
                json!(s(obj, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase(obj)),
                json!(claim),
                json!(volume_class(obj)),
                json!(or_unset(obj, "/spec/volumeAttributesClassName")),
                json!(s(obj, "/status/reason")),
                json!(age),
                json!(or_unset(obj, "/spec/volumeMode")),
            ]
        }
        Kind::PersistentVolumeClaim => {
            // Capacity and access modes only once the claim names its volume.
            let (capacity, modes) = if s(obj, "/spec/volumeName").is_empty() {
                (String::new(), String::new())
            } else {
                (
                    s(obj, "/status/capacity/storage").to_string(),
                    access_modes(obj.pointer("/status/accessModes")),
                )
            };
            vec![
                json!(name),
                json!(phase(obj)),
                json!(s(obj, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(claim_class(obj).unwrap_or_default()),
                json!(or_unset(obj, "/spec/volumeAttributesClassName")),
                json!(age),
                json!(or_unset(obj, "/spec/volumeMode")),
            ]
        }
        _ => {
            let shown = if is_default_class(obj) {
                format!("{name} (default)")
            } else {
                name
            };
            let or = |p: &str, d: &'static str| match s(obj, p) {
                "" => d.to_string(),
                v => v.to_string(),
            };
            let expand = obj
                .get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                json!(shown),
                json!(s(obj, "/provisioner")),
                json!(or("/reclaimPolicy", "Delete")),
                json!(or("/volumeBindingMode", "Immediate")),
                json!(expand),
                json!(age),
            ]
        }
    }
}
