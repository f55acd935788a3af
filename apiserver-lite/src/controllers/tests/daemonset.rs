//! The DaemonSet controller against a real store with Node objects. Only this controller runs: no
//! scheduler binds the pods (they stay pinned to their node by affinity, so a delete removes them at once)
//! and no agent runs them: the tests play the kubelet by writing pod status (`Ready`, `Failed`) through
//! `pods/status`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;
use crate::controllers::{bootstrap, daemonset};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::store::Store;
use crate::store::redb::RedbStore;
use crate::store::redb::tests::TempDir;

struct Cluster {
    harness: Harness,
    api: Api,
}

async fn cluster(nodes: &[&str]) -> Cluster {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    bootstrap(store.as_ref()).await.expect("bootstrap");
    let api = Api::new(store.clone());
    let (shutdown, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(daemonset::run(store.clone(), rx));
    let harness = Harness {
        store,
        shutdown,
        task,
        _dir: dir,
    };
    let c = Cluster { harness, api };
    for name in nodes {
        c.add_node(name, json!([])).await;
    }
    c
}

impl Cluster {
    async fn add_node(&self, name: &str, taints: Value) {
        let mut n = node(name, true, "4");
        n["spec"]["taints"] = taints;
        self.harness
            .put(&format!("/registry/nodes/{name}"), n)
            .await;
    }

    async fn taint(&self, name: &str, taints: Value) {
        let patch = json!({"spec": {"taints": taints}});
        self.api
            .patch(
                by_kind(Kind::Node),
                None,
                name,
                None,
                crate::patch::PatchType::Merge,
                patch,
                &[],
                &opts(),
                false,
            )
            .await
            .expect("taint node");
    }

    async fn daemonset(&self, name: &str) -> Value {
        self.api
            .get(by_kind(Kind::DaemonSet), Some("default"), name)
            .await
            .expect("get daemon set")
    }

    async fn patch_ds(&self, name: &str, patch: Value) {
        self.api
            .patch(
                by_kind(Kind::DaemonSet),
                Some("default"),
                name,
                None,
                crate::patch::PatchType::Merge,
                patch,
                &[],
                &opts(),
                false,
            )
            .await
            .expect("patch daemon set");
    }

    /// Live pods by the node their affinity pins them to.
    async fn pods(&self) -> Vec<(String, Value)> {
        let (items, _) = self
            .api
            .list(
                by_kind(Kind::Pod),
                Some("default"),
                &Default::default(),
                &Default::default(),
            )
            .await
            .expect("list pods");
        items
            .into_iter()
            .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
            .map(|p| {
                let node = p["spec"]["affinity"]["nodeAffinity"]
                    ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
                    ["matchFields"][0]["values"][0]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                (node, p)
            })
            .collect()
    }

    async fn nodes_with_pods(&self) -> Vec<String> {
        let mut n: Vec<String> = self.pods().await.into_iter().map(|(n, _)| n).collect();
        n.sort();
        n
    }

    /// The kubelet's part: the pod runs and is Ready, or has failed.
    async fn set_phase(&self, pod: &str, phase: &str) {
        let ready = if phase == "Running" { "True" } else { "False" };
        let status = json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready,
            "lastTransitionTime": crate::controllers::object::now_rfc3339()}]}});
        match self
            .api
            .patch(
                by_kind(Kind::Pod),
                Some("default"),
                pod,
                Some("status"),
                crate::patch::PatchType::Merge,
                status,
                &[],
                &opts(),
                false,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => panic!("set {pod} {phase}: {e}"),
        }
    }

    async fn ready_all(&self) {
        for (_, pod) in self.pods().await {
            if pod["status"]["phase"] != "Running" {
                let name = pod["metadata"]["name"].as_str().expect("name").to_string();
                self.set_phase(&name, "Running").await;
            }
        }
    }

    async fn wait(&self, what: &str, mut check: impl AsyncFnMut(&Cluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check(self).await {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn reasons(&self, reason: &str) -> Vec<String> {
        self.harness
            .events("default")
            .await
            .into_iter()
            .filter(|e| e["reason"] == reason && e["involvedObject"]["kind"] == "DaemonSet")
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn daemon_set(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}}})
}

fn status(ds: &Value, field: &str) -> i64 {
    ds["status"][field].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn one_pod_per_eligible_node() {
    let c = cluster(&["n1", "n2"]).await;
    c.add_node(
        "tainted",
        json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
    )
    .await;
    let ds = c
        .api
        .create(
            by_kind(Kind::DaemonSet),
            Some("default"),
            daemon_set("agent"),
            &[],
            &opts(),
        )
        .await
        .expect("create")
        .0;
    c.wait("a pod on n1 and n2", async |c| {
        c.nodes_with_pods().await == ["n1", "n2"]
    })
    .await;
    for (_, pod) in c.pods().await {
        assert_eq!(pod["metadata"]["generateName"], "agent-");
        let owner = &pod["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["kind"].as_str(), owner["uid"].as_str()),
            (Some("DaemonSet"), ds["metadata"]["uid"].as_str())
        );
        assert_eq!(owner["controller"], true);
        assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
        assert!(
            pod["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .is_some_and(|h| !h.is_empty())
        );
        let tolerations = pod["spec"]["tolerations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let not_ready = tolerations
            .iter()
            .find(|t| t["key"] == "node.kubernetes.io/not-ready")
            .expect("not-ready toleration");
        assert!(
            not_ready.get("tolerationSeconds").is_none(),
            "daemon pods tolerate forever"
        );
        assert!(
            tolerations
                .iter()
                .any(|t| t["key"] == "node.kubernetes.io/unschedulable")
        );
        assert!(
            pod["spec"].get("nodeName").is_none(),
            "the scheduler binds, not the controller"
        );
    }
    c.wait("status counts two", async |c| {
        let ds = c.daemonset("agent").await;
        status(&ds, "desiredNumberScheduled") == 2
            && status(&ds, "currentNumberScheduled") == 2
            && status(&ds, "updatedNumberScheduled") == 2
            && status(&ds, "numberUnavailable") == 2
            && status(&ds, "observedGeneration") == 1
    })
    .await;
    // The kubelet reports the pods Ready.
    c.ready_all().await;
    c.wait("ready and available", async |c| {
        let ds = c.daemonset("agent").await;
        status(&ds, "numberReady") == 2 && status(&ds, "numberAvailable") == 2
    })
    .await;
    assert_eq!(c.reasons("SuccessfulCreate").await.len(), 2);
    // A new node gets its pod at once.
    let added = Instant::now();
    c.add_node("n3", json!([])).await;
    c.wait("a pod on n3", async |c| {
        c.nodes_with_pods().await == ["n1", "n2", "n3"]
    })
    .await;
    assert!(
        added.elapsed() < Duration::from_secs(2),
        "{:?}",
        added.elapsed()
    );
    // A NoExecute taint it does not tolerate takes the pod off; a NoSchedule one does not.
    c.taint(
        "n2",
        json!([{"key": "maintenance", "effect": "NoSchedule"}]),
    )
    .await;
    c.taint("n1", json!([{"key": "maintenance", "effect": "NoExecute"}]))
        .await;
    c.wait("n1 loses its pod", async |c| {
        c.nodes_with_pods().await == ["n2", "n3"]
    })
    .await;
    // Like kube, a pod kept on a node it would no longer be placed on counts as misscheduled.
    c.wait("desired 1, misscheduled 1", async |c| {
        let ds = c.daemonset("agent").await;
        status(&ds, "desiredNumberScheduled") == 1 && status(&ds, "numberMisscheduled") == 1
    })
    .await;
    assert!(c.reasons("SuccessfulDelete").await.len() == 1);
    // A failed pod is deleted and replaced.
    let (_, failed) = c
        .pods()
        .await
        .into_iter()
        .find(|(n, _)| n == "n3")
        .expect("pod on n3");
    let failed_name = failed["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    c.set_phase(&failed_name, "Failed").await;
    c.wait("a new pod on n3", async |c| {
        c.pods()
            .await
            .iter()
            .any(|(n, p)| n == "n3" && p["metadata"]["name"] != failed_name.as_str())
    })
    .await;
    let failed_events = c.reasons("FailedDaemonPod").await;
    assert_eq!(
        failed_events,
        [format!(
            "Found failed daemon pod default/{failed_name} on node n3, will try to kill it"
        )]
    );
    // A surplus pod (an orphan the selector picks, on a node that has one) is adopted and deleted.
    let mut extra = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "labels": {"app": "agent"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}});
    extra["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]}]}}});
    c.api
        .create(by_kind(Kind::Pod), Some("default"), extra, &[], &opts())
        .await
        .expect("create stray");
    c.wait("the stray pod goes", async |c| {
        let pods = c.pods().await;
        !pods.iter().any(|(_, p)| p["metadata"]["name"] == "stray")
            && pods.iter().filter(|(n, _)| n == "n3").count() == 1
    })
    .await;
    let (_store, _dir) = c.harness.stop().await;
}

#[tokio::test]
async fn rolling_update_replaces_pods_node_by_node() {
    let c = cluster(&["n1", "n2", "n3"]).await;
    c.api
        .create(
            by_kind(Kind::DaemonSet),
            Some("default"),
            daemon_set("web"),
            &[],
            &opts(),
        )
        .await
        .expect("create");
    c.wait("three pods", async |c| c.pods().await.len() == 3)
        .await;
    c.ready_all().await;
    c.wait("available", async |c| {
        status(&c.daemonset("web").await, "numberAvailable") == 3
    })
    .await;
    let old_hash = c.pods().await[0].1["metadata"]["labels"]["controller-revision-hash"].clone();
    c.patch_ds(
        "web",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}),
    )
    .await;
    let ds = c.daemonset("web").await;
    assert_eq!(ds["metadata"]["generation"], 2);
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "2"
    );
    // Play the kubelet, one new pod at a time; at most one node is ever without an available pod.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pods = c.pods().await;
        let available = pods
            .iter()
            .filter(|(_, p)| p["status"]["phase"] == "Running")
            .count();
        let new: Vec<&Value> = pods
            .iter()
            .map(|(_, p)| p)
            .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] != old_hash)
            .collect();
        assert!(available >= 2, "maxUnavailable 1 exceeded: {pods:?}");
        assert!(pods.len() <= 3, "maxSurge 0 exceeded");
        if new.len() == 3 && available == 3 {
            assert!(
                new.iter()
                    .all(|p| p["spec"]["containers"][0]["image"] == "busybox:1.36"
                        && p["metadata"]["labels"]["pod-template-generation"] == "2")
            );
            break;
        }
        for p in new {
            if p["status"]["phase"] != "Running" {
                let name = p["metadata"]["name"].as_str().expect("name").to_string();
                c.set_phase(&name, "Running").await;
            }
        }
        assert!(
            Instant::now() < deadline,
            "rollout did not finish: {pods:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.wait("rolled out", async |c| {
        let ds = c.daemonset("web").await;
        status(&ds, "observedGeneration") == 2
            && status(&ds, "updatedNumberScheduled") == 3
            && status(&ds, "numberAvailable") == 3
    })
    .await;
    // OnDelete: a template change replaces nothing; only a deleted pod comes back new.
    c.patch_ds(
        "web",
        json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox:1.37"}]}}}}),
    )
    .await;
    c.wait("observed", async |c| {
        let ds = c.daemonset("web").await;
        status(&ds, "observedGeneration") == 3 && status(&ds, "updatedNumberScheduled") == 0
    })
    .await;
    let before: Vec<String> = c
        .pods()
        .await
        .iter()
        .map(|(_, p)| p["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(before.len(), 3);
    c.api
        .delete(
            by_kind(Kind::Pod),
            Some("default"),
            &before[0],
            &Default::default(),
            false,
        )
        .await
        .expect("delete pod");
    c.wait("a 1.37 pod replaces it", async |c| {
        let pods = c.pods().await;
        pods.len() == 3
            && pods
                .iter()
                .filter(|(_, p)| p["spec"]["containers"][0]["image"] == "busybox:1.37")
                .count()
                == 1
    })
    .await;
    let after = c.pods().await;
    assert!(
        after
            .iter()
            .all(|(_, p)| p["metadata"]["name"] != before[0].as_str())
    );
    let (_store, _dir) = c.harness.stop().await;
}

mod history;
