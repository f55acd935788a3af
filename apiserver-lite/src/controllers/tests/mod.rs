//! The controllers against a real RedbStore in a temp dir.

mod bootstrap_ipam;
mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpoints;
mod gc;
mod hpa;
mod job;
mod job_indexed;
mod kube_dns;
mod leader;
mod node_lifecycle;
mod quota;
mod replicaset;
mod replicaset_rc;
mod root_ca;
mod scheduler;
mod service_lb;
mod statefulset;
mod volumes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Config, run, run_with_grace};
use crate::handlers::WriteOpts;
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

pub(super) struct Harness {
    pub(super) store: Arc<dyn Store>,
    pub(super) shutdown: tokio::sync::watch::Sender<bool>,
    pub(super) task: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub(super) _dir: TempDir,
}

pub(super) const TEST_CA_PEM: &str =
    "-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n";

/// How a user writes: strict field validation, no field manager.
pub(super) fn opts() -> WriteOpts {
    WriteOpts {
        dry_run: false,
        field_validation: crate::strict::FieldValidation::Strict,
        field_manager: None,
        apply: false,
    }
}

pub(super) fn config() -> Config {
    Config {
        cluster_cidr: "10.244.0.0/16".parse().expect("cidr"),
        node_cidr_mask: 24,
        service_cidr: "10.96.0.0/12".parse().expect("cidr"),
        cluster_dns: Some("10.96.0.10".parse().expect("ip")),
        advertise_address: "192.0.2.10".parse().expect("ip"),
        secure_port: 6443,
        root_ca_pem: TEST_CA_PEM.to_string(),
        local_path_root: "/var/lib/skiff/storage".into(),
        metrics: Default::default(),
        service_lb: true,
    }
}

impl Harness {
    pub(super) fn start() -> Harness {
        let dir = TempDir::new();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
        Harness::start_on(store, dir)
    }

    pub(super) fn start_with_node_grace(grace: Duration) -> Harness {
        let dir = TempDir::new();
        let store: Arc<dyn Store> =
            Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
        Harness::start_unelected(store, dir, config(), grace)
    }

    /// The controllers without election.
    pub(super) fn start_unelected(
        store: Arc<dyn Store>,
        dir: TempDir,
        config: Config,
        node_grace: Duration,
    ) -> Harness {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_with_grace(store.clone(), config, node_grace, rx));
        Harness {
            store,
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub(super) fn start_on(store: Arc<dyn Store>, dir: TempDir) -> Harness {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run(store.clone(), config(), rx));
        Harness {
            store,
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub(super) async fn stop(self) -> (Arc<dyn Store>, TempDir) {
        let _ = self.shutdown.send(true);
        let result = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("controllers stop");
        result
            .expect("controllers task")
            .expect("controllers ran cleanly");
        (self.store, self._dir)
    }

    pub(super) async fn put(&self, key: &str, value: Value) {
        self.store
            .create(key, serde_json::to_vec(&value).expect("json"))
            .await
            .expect("create");
    }

    pub(super) async fn get(&self, key: &str) -> Option<Value> {
        let kv = self.store.get(key).await.expect("get")?;
        Some(serde_json::from_slice(&kv.value).expect("stored JSON"))
    }

    /// The key of the Service the cluster IP `ip` is reserved for.
    pub(super) async fn ip_owner(&self, ip: &str) -> Option<String> {
        let kv = self
            .store
            .get(&format!("/registry/serviceips/{ip}"))
            .await
            .expect("get")?;
        Some(String::from_utf8(kv.value).expect("owner key"))
    }

    /// Poll `key` until `check` holds; return the object.
    /// Wait until the pod at `key` is bound to a node; the pod.
    pub(super) async fn wait_bound(&self, key: &str) -> Value {
        self.wait_for(key, "bound", |p| node_name(p).is_some())
            .await
    }

    pub(super) async fn wait_for(
        &self,
        key: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = self.get(key).await
                && check(&v)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {key}: {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(super) async fn events(&self, ns: &str) -> Vec<Value> {
        let (items, _) = self
            .store
            .list(&format!("/registry/events/{ns}/"))
            .await
            .expect("list events");
        items
            .iter()
            .map(|kv| serde_json::from_slice(&kv.value).expect("event JSON"))
            .collect()
    }

    pub(super) async fn set_ready(&self, name: &str, ready: bool) {
        let key = format!("/registry/nodes/{name}");
        for _ in 0..20 {
            let kv = self
                .store
                .get(&key)
                .await
                .expect("get")
                .expect("node exists");
            let mut node: Value = serde_json::from_slice(&kv.value).expect("json");
            node["status"]["conditions"] =
                json!([{"type": "Ready", "status": if ready { "True" } else { "False" }}]);
            if self
                .store
                .update(
                    &key,
                    serde_json::to_vec(&node).expect("json"),
                    kv.mod_revision,
                )
                .await
                .is_ok()
            {
                return;
            }
        }
        panic!("could not update node {name}");
    }
}

pub(super) fn node(name: &str, ready: bool, cpu: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": uuid::Uuid::new_v4().to_string(), "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
        }
    })
}

pub(super) fn pod(ns: &str, name: &str, cpu: Option<&str>) -> Value {
    let mut container = json!({"name": "c", "image": "busybox"});
    if let Some(cpu) = cpu {
        container["resources"] = json!({"requests": {"cpu": cpu}});
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": uuid::Uuid::new_v4().to_string(),
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [container], "schedulerName": "default-scheduler"},
        "status": {"phase": "Pending"}
    })
}

pub(super) fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str()
}

pub(super) fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}
