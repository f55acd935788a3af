//! The storage admission plugins and the default class, through the API's verbs over a real store.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{class, good_pvc, host_pv};
use crate::handlers::{Api, DeleteOpts, Query, WriteOpts};
use crate::resources::storage::admission::default_class;
use crate::resources::storage::bootstrap::ensure_default_class;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::strict::FieldValidation;

struct Fixture {
    _dir: tempfile::TempDir,
    api: Api,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    crate::controllers::bootstrap(store.as_ref())
        .await
        .expect("namespaces");
    Fixture {
        _dir: dir,
        api: Api::new(store),
    }
}

fn opts() -> WriteOpts {
    WriteOpts {
        dry_run: false,
        field_validation: FieldValidation::Strict,
        field_manager: None,
        apply: false,
    }
}

impl Fixture {
    async fn create(&self, kind: Kind, obj: Value) -> Value {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        self.api
            .create(def, ns, obj, &[], &opts())
            .await
            .expect("create")
            .0
    }

    async fn update(&self, kind: Kind, obj: Value) -> Result<Value, crate::status::ApiError> {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.api
            .update(def, ns, &name, None, obj, &[], &opts())
            .await
            .map(|r| r.0)
    }

    async fn status(&self, kind: Kind, obj: Value) -> Value {
        let def = by_kind(kind);
        let ns = def.namespaced.then_some("default");
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        self.api
            .update(def, ns, &name, Some("status"), obj, &[], &opts())
            .await
            .expect("status update")
            .0
    }
}

fn named_class(name: &str, created: &str, default: bool) -> Value {
    let mut c = class(json!({}));
    c["metadata"] = json!({"name": name, "creationTimestamp": created});
    if default {
        c["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
    }
    c
}

#[test]
fn the_newest_default_class_wins() {
    let t1 = "2024-01-01T00:00:00Z";
    let t2 = "2024-02-01T00:00:00Z";
    assert_eq!(default_class(&[named_class("a", t1, false)]), None);
    let classes = [
        named_class("old", t1, true),
        named_class("plain", t2, false),
        named_class("zeta", t2, true),
        named_class("beta", t2, true),
    ];
    assert_eq!(default_class(&classes).as_deref(), Some("beta"));
    let mut beta = named_class("legacy", "2025-01-01T00:00:00Z", false);
    beta["metadata"]["annotations"] =
        json!({"storageclass.beta.kubernetes.io/is-default-class": "true"});
    assert_eq!(
        default_class(&[classes[0].clone(), beta]).as_deref(),
        Some("legacy")
    );
}

#[tokio::test]
async fn claims_get_the_default_class_and_protection() {
    let f = fixture().await;
    // No default class yet: the class stays unset.
    let mut claim = good_pvc();
    claim["metadata"]["name"] = json!("before");
    let c = f.create(Kind::PersistentVolumeClaim, claim).await;
    assert!(c["spec"].get("storageClassName").is_none(), "{c}");
    assert_eq!(
        c["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );

    assert!(
        ensure_default_class(f.api.store.as_ref())
            .await
            .expect("bootstrap")
    );
    let c = f.create(Kind::PersistentVolumeClaim, good_pvc()).await;
    assert_eq!(c["spec"]["storageClassName"], "local-path");
    assert_eq!(c["status"]["phase"], "Pending");
    // "" is "no class"; an explicit class and the beta annotation are kept; finalizers are not doubled.
    let mut none = good_pvc();
    none["metadata"]["name"] = json!("none");
    none["spec"]["storageClassName"] = json!("");
    none["metadata"]["finalizers"] = json!(["example.com/keep", "kubernetes.io/pvc-protection"]);
    let c = f.create(Kind::PersistentVolumeClaim, none).await;
    assert_eq!(c["spec"]["storageClassName"], "");
    assert_eq!(
        c["metadata"]["finalizers"],
        json!(["example.com/keep", "kubernetes.io/pvc-protection"])
    );
    let mut beta = good_pvc();
    beta["metadata"]["name"] = json!("beta");
    beta["metadata"]["annotations"] = json!({"volume.beta.kubernetes.io/storage-class": "fast"});
    let c = f.create(Kind::PersistentVolumeClaim, beta).await;
    assert!(c["spec"].get("storageClassName").is_none(), "{c}");

    let v = f.create(Kind::PersistentVolume, host_pv()).await;
    assert_eq!(
        v["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
    assert_eq!(v["status"]["phase"], "Pending");
}

#[tokio::test]
async fn deleting_a_protected_claim_leaves_it_terminating() {
    let f = fixture().await;
    let def = by_kind(Kind::PersistentVolumeClaim);
    f.create(Kind::PersistentVolumeClaim, good_pvc()).await;
    let del = DeleteOpts::from_request(&Query::parse(None), b"").expect("opts");
    let gone = f
        .api
        .delete(def, Some("default"), "data", &del, false)
        .await
        .expect("delete");
    assert!(gone["metadata"]["deletionTimestamp"].is_string(), "{gone}");
    let kept = f
        .api
        .get(def, Some("default"), "data")
        .await
        .expect("still there");
    assert!(kept["metadata"]["deletionTimestamp"].is_string());
    let row = crate::resources::storage::cells(
        Kind::PersistentVolumeClaim,
        &kept,
        "data".into(),
        "1s".into(),
    );
    assert_eq!(row[1], "Terminating");
    // The protection controller's removal of the finalizer ends it.
    let mut done = kept.clone();
    done["metadata"]["finalizers"] = json!([]);
    f.update(Kind::PersistentVolumeClaim, done)
        .await
        .expect("finalize");
    assert!(f.api.get(def, Some("default"), "data").await.is_err());
}

#[tokio::test]
async fn growing_a_claim_needs_a_bound_claim_of_an_expandable_class() {
    let f = fixture().await;
    f.create(
        Kind::StorageClass,
        class(json!({"allowVolumeExpansion": true})),
    )
    .await;
    let mut fixed = class(json!({}));
    fixed["metadata"]["name"] = json!("fixed");
    f.create(Kind::StorageClass, fixed).await;
    for (name, class) in [("grow", "fast"), ("stuck", "fixed")] {
        let mut c = good_pvc();
        c["metadata"]["name"] = json!(name);
        c["spec"]["storageClassName"] = json!(class);
        f.create(Kind::PersistentVolumeClaim, c).await;
    }
    let get = |name: &str| {
        let name = name.to_string();
        let api = &f.api;
        async move {
            api.get(by_kind(Kind::PersistentVolumeClaim), Some("default"), &name)
                .await
                .expect("get")
        }
    };
    let grown = |mut c: Value| {
        c["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        c
    };
    let e = f
        .update(Kind::PersistentVolumeClaim, grown(get("grow").await))
        .await
        .expect_err("pending");
    // Validation comes first, as in kube: a pending claim's spec is immutable.
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("spec is immutable after creation"),
        "{}",
        e.message
    );
    // kube's plugin also refuses a claim that is not Bound (validation refuses it first above).
    let pending = get("grow").await;
    let e = crate::resources::storage::admission::admit_update(
        &f.api,
        &pending,
        &grown(pending.clone()),
    )
    .await
    .expect_err("pending");
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "persistentvolumeclaims \"grow\" is forbidden: Only bound persistent volume claims can be expanded"
    );
    // Bind both as the binder does: volume name, then status.
    for name in ["grow", "stuck"] {
        let mut c = get(name).await;
        c["spec"]["volumeName"] = json!(format!("pv-{name}"));
        let c = f
            .update(Kind::PersistentVolumeClaim, c)
            .await
            .expect("bind");
        let mut s = c.clone();
        s["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
        let s = f.status(Kind::PersistentVolumeClaim, s).await;
        assert_eq!(s["status"]["phase"], "Bound");
        assert_eq!(s["spec"]["volumeName"], format!("pv-{name}"));
    }
    let c = f
        .update(Kind::PersistentVolumeClaim, grown(get("grow").await))
        .await
        .expect("expandable");
    assert_eq!(c["spec"]["resources"]["requests"]["storage"], "2Gi");
    let e = f
        .update(Kind::PersistentVolumeClaim, grown(get("stuck").await))
        .await
        .expect_err("class without expansion");
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "persistentvolumeclaims \"stuck\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );
}

#[tokio::test]
async fn volume_status_is_written_through_the_subresource() {
    let f = fixture().await;
    let v = f.create(Kind::PersistentVolume, host_pv()).await;
    let mut s = v.clone();
    s["status"] = json!({"phase": "Available"});
    s["spec"]["capacity"]["storage"] = json!("9Gi");
    let out = f.status(Kind::PersistentVolume, s).await;
    assert_eq!(out["status"]["phase"], "Available");
    assert_eq!(
        out["spec"]["capacity"]["storage"], "1Gi",
        "status writes keep the spec"
    );
    // And a main-resource write keeps the status.
    let mut m = out.clone();
    m["status"] = json!({"phase": "Failed"});
    let out = f.update(Kind::PersistentVolume, m).await.expect("update");
    assert_eq!(out["status"]["phase"], "Available");
}

#[tokio::test]
async fn the_default_class_is_created_once() {
    let f = fixture().await;
    let store = f.api.store.as_ref();
    let def = by_kind(Kind::StorageClass);
    assert!(ensure_default_class(store).await.expect("create"));
    let sc = f.api.get(def, None, "local-path").await.expect("created");
    assert_eq!(sc["provisioner"], "skiff.io/local-path");
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "WaitForFirstConsumer");
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert!(def.validate_create(&sc).is_empty());
    // An admin's change is kept; a deleted class comes back.
    let mut edited = sc.clone();
    edited["metadata"]["annotations"] = json!({});
    f.update(Kind::StorageClass, edited).await.expect("edit");
    assert!(!ensure_default_class(store).await.expect("again"));
    let sc = f.api.get(def, None, "local-path").await.expect("kept");
    assert!(!crate::resources::storage::is_default_class(&sc));
    let del = DeleteOpts::from_request(&Query::parse(None), b"").expect("opts");
    f.api
        .delete(def, None, "local-path", &del, false)
        .await
        .expect("delete");
    assert!(ensure_default_class(store).await.expect("recreate"));
}
