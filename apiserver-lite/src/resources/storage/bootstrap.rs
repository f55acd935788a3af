//! The default StorageClass `local-path` (k3s ships rancher's local-path-provisioner with one): created at
//! server start when absent, so a deleted one comes back at the next start, like a k3s manifest.
//! `--default-storage-class=false` turns this off.

use serde_json::{Value, json};

use super::{DEFAULT_CLASS_ANNOTATION, DEFAULT_CLASS_NAME, LOCAL_PATH_PROVISIONER};
use crate::resources::{Kind, by_kind};
use crate::store::{Store, StoreError};

/// The class as it is created.
pub fn default_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": DEFAULT_CLASS_NAME,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": crate::handlers::now_rfc3339(),
            "generation": 1,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// Create `local-path` unless a StorageClass of that name exists (whatever it looks like: an admin's
/// edits are kept). Returns whether it was created. Safe to run on every start.
pub async fn ensure_default_class(store: &dyn Store) -> Result<bool, StoreError> {
    let key = by_kind(Kind::StorageClass).key(None, DEFAULT_CLASS_NAME);
    if store.get(&key).await?.is_some() {
        return Ok(false);
    }
    let bytes =
        serde_json::to_vec(&default_class()).map_err(|e| StoreError::Backend(e.to_string()))?;
    match store.create(&key, bytes).await {
        Ok(_) => {
            tracing::info!(
                storageclass = DEFAULT_CLASS_NAME,
                "created the default StorageClass"
            );
            Ok(true)
        }
        Err(StoreError::AlreadyExists(_)) => Ok(false),
        Err(e) => Err(e),
    }
}
