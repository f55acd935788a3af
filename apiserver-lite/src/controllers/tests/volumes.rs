//! The volume binder, the local-path provisioner and the protection finalizers against a real store.
//! Objects are written through the REST handlers as a user would; the tests play the scheduler (the
//! `volume.kubernetes.io/selected-node` annotation) and the kubelet (pod status). Finalizers the tests
//! depend on are put in the objects here rather than left to admission.

mod binding;
mod ephemeral;
mod protection;
mod provisioning;

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster};
use super::{node, opts};
use crate::handlers::DeleteOpts;
use crate::resources::{Kind, by_kind};

const NS: &str = "default";

fn ns_of(kind: Kind) -> Option<&'static str> {
    by_kind(kind).namespaced.then_some(NS)
}

async fn create(c: &Cluster, kind: Kind, body: Value) -> Value {
    c.api
        .create(by_kind(kind), ns_of(kind), body, &[], &opts())
        .await
        .unwrap_or_else(|e| panic!("create {kind:?}: {e}"))
        .0
}

async fn get(c: &Cluster, kind: Kind, name: &str) -> Option<Value> {
    match c.api.get(by_kind(kind), ns_of(kind), name).await {
        Ok(v) => Some(v),
        Err(e) if e.code == 404 => None,
        Err(e) => panic!("get {name}: {e}"),
    }
}

async fn delete(c: &Cluster, kind: Kind, name: &str) {
    c.api
        .delete(
            by_kind(kind),
            ns_of(kind),
            name,
            &DeleteOpts::default(),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("delete {name}: {e}"));
}

/// Wait until the object satisfies `check`; return it.
async fn wait_for(
    c: &Cluster,
    kind: Kind,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let mut found = None;
    c.wait(&format!("{name}: {what}"), async |c| {
        found = get(c, kind, name).await.filter(|v| check(v));
        found.is_some()
    })
    .await;
    found.unwrap_or_default()
}

async fn wait_gone(c: &Cluster, kind: Kind, name: &str) {
    c.wait(&format!("{name} gone"), async |c| {
        get(c, kind, name).await.is_none()
    })
    .await;
}

fn phase(obj: &Value) -> &str {
    obj["status"]["phase"].as_str().unwrap_or("")
}

fn annotation<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj["metadata"]["annotations"][name].as_str()
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().expect("uid").to_string()
}

fn volume(name: &str, size: &str, modes: &[&str], class: &str, policy: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": size}, "accessModes": modes, "storageClassName": class,
                 "persistentVolumeReclaimPolicy": policy,
                 "hostPath": {"path": format!("/srv/{name}")}}})
}

fn claim(name: &str, size: &str, modes: &[&str], class: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": modes, "storageClassName": class,
                 "resources": {"requests": {"storage": size}}}})
}

fn class(name: &str, provisioner: &str, mode: &str) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
        "provisioner": provisioner, "reclaimPolicy": "Delete", "volumeBindingMode": mode})
}

fn with_finalizer(mut obj: Value, finalizer: &str) -> Value {
    obj["metadata"]["finalizers"] = json!([finalizer]);
    obj
}

fn local_affinity(mut pv: Value, node: &str) -> Value {
    pv["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}});
    pv
}

const RWO: &[&str] = &["ReadWriteOnce"];

/// Bind `claim` to the volume it names and wait until both are Bound.
async fn bound_pair(c: &Cluster, pv: Value, name: &str) {
    let volume_name = pv["metadata"]["name"].as_str().expect("name").to_string();
    create(c, Kind::PersistentVolume, pv).await;
    let mut pvc = with_finalizer(claim(name, "1Gi", RWO, ""), "kubernetes.io/pvc-protection");
    pvc["spec"]["volumeName"] = json!(volume_name);
    create(c, Kind::PersistentVolumeClaim, pvc).await;
    wait_for(c, Kind::PersistentVolumeClaim, name, "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
    wait_for(c, Kind::PersistentVolume, &volume_name, "Bound", |v| {
        phase(v) == "Bound"
    })
    .await;
}
