//! Pod-level cgroups end to end: the agent gives `<cgroup-parent>/pod<uid>` the kubelet's values (CPU
//! weight from the pod's requests, a CFS quota and a memory limit when every container has limits, init
//! containers counted as the kubelet counts them) before runc puts the containers inside it. Real kubectl
//! → skiff-apiserver (in this process) → the real `skiff-agent` binary → a private containerd → runc.
//! Pods use the host network and are bound by `spec.nodeName`. Needs root.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use support::cluster::{self, Cluster, Kubectl, PodCleanup, Setup};

const PARENT: &str = "skiff-test-pc";

fn agent_args(_: &support::TempDir) -> Vec<std::ffi::OsString> {
    vec!["--cgroup-parent".into(), PARENT.into()]
}

fn create_pod(k: &Kubectl, dir: &std::path::Path, node: &str, name: &str, spec: serde_json::Value) {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "hostNetwork": true, "terminationGracePeriodSeconds": 1},
    });
    if let (Some(base), Some(extra)) = (pod["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, pod.to_string()).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &path.to_string_lossy()]);
}

fn sleeper(name: &str, resources: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "image": "busybox:test", "command": ["sleep", "3600"], "resources": resources})
}

/// The pod cgroup's (CPU weight or shares, CFS quota, memory limit) as cgroupfs shows them, in v1 terms:
/// shares, quota in µs (-1: none), limit in bytes (`None`: unlimited).
fn pod_cgroup(uid: &str) -> (String, String, Option<u64>) {
    let rel = format!("{PARENT}/pod{uid}");
    let read = |p: PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    };
    let root = PathBuf::from("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        let dir = root.join(&rel);
        let max = read(dir.join("cpu.max"));
        let quota = max.split_whitespace().next().unwrap_or("max");
        let memory = read(dir.join("memory.max"));
        (
            format!("weight {}", read(dir.join("cpu.weight"))),
            if quota == "max" {
                "-1".into()
            } else {
                quota.into()
            },
            memory.parse().ok(),
        )
    } else {
        let memory: u64 = read(root.join("memory").join(&rel).join("memory.limit_in_bytes"))
            .parse()
            .unwrap_or_else(|e| panic!("memory.limit_in_bytes: {e}"));
        (
            format!(
                "shares {}",
                read(root.join("cpu").join(&rel).join("cpu.shares"))
            ),
            read(root.join("cpu").join(&rel).join("cpu.cfs_quota_us")),
            // v1 reports "no limit" as the largest page-aligned value.
            (memory < 1 << 62).then_some(memory),
        )
    }
}

fn cpu(shares: u64) -> String {
    if PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists() {
        format!("weight {}", 1 + (shares - 2) * 9999 / 262_142)
    } else {
        format!("shares {shares}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_cgroups_carry_the_pods_resources() {
    let Cluster {
        ctrd,
        reg,
        dir,
        server,
        node,
        agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "podcgroups",
        tag: "pc",
        busybox_dir: "pc-busybox",
        applets: &["sh", "sleep", "true"],
        cluster_cidr: "10.239.0.0/16",
        service_cidr: "10.240.0.0/16",
        agent_args,
    });
    let pods = ["besteffort", "guaranteed", "burstable", "big-init"];
    let cleanup = PodCleanup(k.clone(), pods.to_vec());

    let fixed = json!({"requests": {"cpu": "250m", "memory": "32Mi"}, "limits": {"cpu": "250m", "memory": "32Mi"}});
    create_pod(
        &k,
        &dir.path,
        &node,
        "besteffort",
        json!({"containers": [sleeper("a", json!({}))]}),
    );
    create_pod(
        &k,
        &dir.path,
        &node,
        "guaranteed",
        json!({"containers": [sleeper("a", fixed.clone()), sleeper("b", fixed.clone())]}),
    );
    create_pod(
        &k,
        &dir.path,
        &node,
        "burstable",
        json!({"containers": [sleeper("a", fixed.clone()), sleeper("b", json!({"requests": {"cpu": "100m"}}))]}),
    );
    create_pod(
        &k,
        &dir.path,
        &node,
        "big-init",
        json!({
            "initContainers": [{"name": "init", "image": "busybox:test", "command": ["true"],
                                "resources": {"limits": {"cpu": "400m", "memory": "48Mi"}}}],
            "containers": [sleeper("a", fixed.clone())],
        }),
    );
    for pod in pods {
        k.wait_for(&format!("{pod} Ready"), Duration::from_secs(90), |k| {
            k.ready(pod) == "True"
        });
    }

    let uid = |pod: &str| k.jsonpath(pod, "{.metadata.uid}");
    assert_eq!(
        pod_cgroup(&uid("besteffort")),
        (cpu(2), "-1".into(), None),
        "BestEffort: the minimum weight, no quota, no memory limit"
    );
    assert_eq!(
        pod_cgroup(&uid("guaranteed")),
        (cpu(512), "50000".into(), Some(64 << 20)),
        "two containers of 250m / 32Mi"
    );
    assert_eq!(
        pod_cgroup(&uid("burstable")),
        (cpu(358), "-1".into(), None),
        "350m requested; one container without limits means no pod quota or memory limit"
    );
    assert_eq!(
        pod_cgroup(&uid("big-init")),
        (cpu(409), "40000".into(), Some(48 << 20)),
        "the init container's 400m / 48Mi outweigh the app container's 250m / 32Mi"
    );

    drop(cleanup);
    drop((agent, dir, server, reg, ctrd));
    support::remove_cgroup_parent(PARENT);
}
