//! Storage kinds: core/v1 PersistentVolumes and PersistentVolumeClaims, storage.k8s.io/v1 StorageClasses.
//! Their typed schemas and table columns (kube 1.32's printers); defaults and validation follow below.

use serde_json::{Value, json};

use super::Kind;

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    use k8s_openapi::api::storage::v1::StorageClass;
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    match kind {
        Kind::PersistentVolume => rt::<PersistentVolume>(v),
        Kind::PersistentVolumeClaim => rt::<PersistentVolumeClaim>(v),
        _ => rt::<StorageClass>(v),
    }
}

/// The annotation that makes a StorageClass the default one.
pub const DEFAULT_CLASS_ANNOTATION: &str = "storageclass.kubernetes.io/is-default-class";

fn col(name: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": "string", "format": "", "description": desc, "priority": priority})
}

pub fn columns(kind: Kind, name: Value, age: Value) -> Vec<Value> {
    match kind {
        Kind::PersistentVolume => vec![
            name,
            col("Capacity", "capacity is the description of the persistent volume's resources and capacity.", 0),
            col("Access Modes", "accessModes contains all ways the volume can be mounted.", 0),
            col("Reclaim Policy", "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.", 0),
            col("Status", "phase indicates if a volume is available, bound to a claim, or released by a claim.", 0),
            col("Claim", "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.", 0),
            col("StorageClass", "storageClassName is the name of StorageClass to which this persistent volume belongs.", 0),
            col("VolumeAttributesClass", "Name of VolumeAttributesClass to which this persistent volume belongs.", 0),
            col("Reason", "reason is a brief CamelCase string that describes any failure.", 0),
            age,
            col("VolumeMode", "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.", 1),
        ],
        Kind::PersistentVolumeClaim => vec![
            name,
            col("Status", "phase represents the current phase of PersistentVolumeClaim.", 0),
            col("Volume", "volumeName is the binding reference to the PersistentVolume backing this claim.", 0),
            col("Capacity", "capacity represents the actual resources of the underlying volume.", 0),
            col("Access Modes", "accessModes contains the desired access modes the volume should have.", 0),
            col("StorageClass", "storageClassName is the name of the StorageClass required by the claim.", 0),
            col("VolumeAttributesClass", "volumeAttributesClassName may be used to set the VolumeAttributesClass used by this claim.", 0),
            age,
            col("VolumeMode", "volumeMode defines what type of volume is required by the claim.", 1),
        ],
        _ => vec![
            name,
            col("Provisioner", "provisioner indicates the type of the provisioner.", 0),
            col("ReclaimPolicy", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class.", 0),
            col("VolumeBindingMode", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.", 0),
            col("AllowVolumeExpansion", "allowVolumeExpansion shows whether the storage class allow volume expand.", 0),
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

fn unset(x: &str) -> &str {
    if x.is_empty() { "<unset>" } else { x }
}

/// Whether `class` carries the default-class annotation (`"true"`).
pub fn is_default_class(class: &Value) -> bool {
    class
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
        .and_then(Value::as_str)
        == Some("true")
}

pub fn cells(kind: Kind, obj: &Value, name: String, age: String) -> Vec<Value> {
    let mode = || match s(obj, "/spec/volumeMode") {
        "" => "Filesystem".to_string(),
        m => m.to_string(),
    };
    match kind {
        Kind::PersistentVolume => {
            let claim = match (
                s(obj, "/spec/claimRef/namespace"),
                s(obj, "/spec/claimRef/name"),
            ) {
                (_, "") => String::new(),
                (ns, n) => format!("{ns}/{n}"),
            };
            let phase = if obj.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                s(obj, "/status/phase")
            };
            vec![
                json!(name),
                json!(s(obj, "/spec/capacity/storage")),
                json!(access_modes(obj.pointer("/spec/accessModes"))),
                json!(s(obj, "/spec/persistentVolumeReclaimPolicy")),
                json!(phase),
                json!(claim),
                json!(s(obj, "/spec/storageClassName")),
                json!(unset(s(obj, "/spec/volumeAttributesClassName"))),
                json!(s(obj, "/status/reason")),
                json!(age),
                json!(mode()),
            ]
        }
        Kind::PersistentVolumeClaim => {
            let bound = !s(obj, "/spec/volumeName").is_empty();
            let (capacity, modes) = if bound {
                (
                    s(obj, "/status/capacity/storage").to_string(),
                    access_modes(obj.pointer("/status/accessModes")),
                )
            } else {
                (String::new(), String::new())
            };
            let phase = if obj.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                s(obj, "/status/phase")
            };
            vec![
                json!(name),
                json!(phase),
                json!(s(obj, "/spec/volumeName")),
                json!(capacity),
                json!(modes),
                json!(s(obj, "/spec/storageClassName")),
                json!(unset(s(obj, "/spec/volumeAttributesClassName"))),
                json!(age),
                json!(mode()),
            ]
        }
        _ => {
            let shown = if is_default_class(obj) {
                format!("{name} (default)")
            } else {
                name
            };
            let reclaim = match s(obj, "/reclaimPolicy") {
                "" => "Delete",
                r => r,
            };
            let binding = match s(obj, "/volumeBindingMode") {
                "" => "Immediate",
                m => m,
            };
            let expand = obj
                .get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            vec![
                json!(shown),
                json!(s(obj, "/provisioner")),
                json!(reclaim),
                json!(binding),
                json!(expand),
                json!(age),
            ]
        }
    }
}
