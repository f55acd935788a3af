//! containerd restart survival: the test's containerd is killed with SIGKILL while pods run and started again
//! on the same root, state and socket. The containers keep running (their shims survive), the agent
//! reconnects its gRPC channel and re-subscribes to the event stream, statuses stay correct, an exit that
//! happened while containerd was down is reported, and a new pod starts afterwards. Real kubectl →
//! skiff-apiserver (in this process) → the real `skiff-agent` binary. Pods use the host network. Needs root.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use support::cluster::{self, Cluster, Kubectl, PodCleanup, Setup, tail};

const NAMESPACE: &str = "skiff-cr-test";

fn create(k: &Kubectl, dir: &std::path::Path, node: &str, name: &str, policy: &str, cmd: &str) {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "hostNetwork": true, "terminationGracePeriodSeconds": 1,
                 "restartPolicy": policy,
                 "containers": [{"name": "main", "image": "busybox:test", "command": ["sh", "-c", cmd]}]}});
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, pod.to_string()).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &path.to_string_lossy()]);
}

/// Task id → PID of its init process, from `ctr task ls`.
fn task_pids(socket: &std::path::Path) -> HashMap<String, i32> {
    let out = std::process::Command::new("ctr")
        .args([
            "--address",
            &socket.to_string_lossy(),
            "-n",
            NAMESPACE,
            "task",
            "ls",
        ])
        .output()
        .unwrap_or_else(|e| panic!("ctr: {e}"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

fn container_id(k: &Kubectl, pod: &str) -> String {
    k.jsonpath(pod, "{.status.containerStatuses[0].containerID}")
        .trim_start_matches("containerd://")
        .to_string()
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

/// A ready (loopback-only) CNI network and a cgroup parent of this test's own, apart from a lab's `skiff`.
fn agent_args(dir: &support::TempDir) -> Vec<std::ffi::OsString> {
    cluster::ready_network(dir);
    vec!["--cgroup-parent".into(), "skiff-test-cr".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_survive_a_containerd_crash() {
    let Cluster {
        mut ctrd,
        reg,
        dir,
        server,
        node,
        mut agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "ctrd-restart",
        tag: "cr",
        busybox_dir: "cr-busybox",
        applets: &["sh", "echo", "sleep", "cat", "true"],
        cluster_cidr: "10.237.0.0/16",
        service_cidr: "10.238.0.0/16",
        agent_args,
    });
    support::cluster::wait_node_ready(&k, &node, Duration::from_secs(60));
    let cleanup = PodCleanup(k.clone(), vec!["keeper", "dier", "fresh"]);
    create(
        &k,
        &dir.path,
        &node,
        "keeper",
        "Always",
        "echo up; sleep 3600",
    );
    create(&k, &dir.path, &node, "dier", "Never", "sleep 1000000");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/keeper",
        "pod/dier",
        "--timeout=120s",
    ]);
    let keeper_id = container_id(&k, "keeper");
    let dier_id = container_id(&k, "dier");
    let pids = task_pids(&ctrd.socket);
    let keeper_pid = *pids
        .get(&keeper_id)
        .unwrap_or_else(|| panic!("no task {keeper_id}: {pids:?}"));
    let dier_pid = *pids
        .get(&dier_id)
        .unwrap_or_else(|| panic!("no task {dier_id}: {pids:?}"));

    // containerd crashes; while it is down one container dies.
    ctrd.kill9();
    assert!(
        alive(keeper_pid),
        "containers outlive containerd (the shim keeps them)"
    );
    let _ = kill(Pid::from_raw(dier_pid), Signal::SIGKILL);
    // Long enough for the agent to report the runtime down: the Node turns NotReady and the node
    // lifecycle controller marks its pods not Ready; the agent reports them again (as the kubelet's status
    // manager does when the API's status differs from its own).
    k.wait_for(
        "the node reports the runtime down",
        Duration::from_secs(60),
        |k| {
            let out = k.run(
                &[
                    "get",
                    "node",
                    &node,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
                None,
            );
            String::from_utf8_lossy(&out.stdout) == "False"
        },
    );
    assert!(
        matches!(agent.child.try_wait(), Ok(None)),
        "the agent keeps running without containerd:\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 40)
    );
    ctrd.restart();

    // The agent reconnects: a new pod starts, the exit is reported, the survivor is untouched.
    create(&k, &dir.path, &node, "fresh", "Always", "sleep 3600");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/fresh",
        "--timeout=120s",
    ]);
    k.wait_for(
        "the exit during the outage is reported",
        Duration::from_secs(60),
        |k| {
            k.jsonpath(
                "dier",
                "{.status.containerStatuses[0].state.terminated.exitCode}",
            ) == "137"
        },
    );
    assert_eq!(k.jsonpath("dier", "{.status.phase}"), "Failed");
    assert_eq!(container_id(&k, "keeper"), keeper_id);
    assert_eq!(
        k.jsonpath("keeper", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    k.wait_for("keeper Ready again", Duration::from_secs(60), |k| {
        k.ready("keeper") == "True"
    });
    support::cluster::wait_node_ready(&k, &node, Duration::from_secs(60));
    assert!(alive(keeper_pid), "the same process still runs");
    assert_eq!(task_pids(&ctrd.socket).get(&keeper_id), Some(&keeper_pid));
    // The event stream is live again: an exit now is seen without waiting for the relist.
    let fresh_id = container_id(&k, "fresh");
    let fresh_pid = *task_pids(&ctrd.socket)
        .get(&fresh_id)
        .unwrap_or_else(|| panic!("no task {fresh_id}"));
    let t = std::time::Instant::now();
    let _ = kill(Pid::from_raw(fresh_pid), Signal::SIGKILL);
    k.wait_for("fresh restarted", Duration::from_secs(60), |k| {
        k.jsonpath("fresh", "{.status.containerStatuses[0].restartCount}") == "1"
    });
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "restart driven by the event stream, not the 10 s relist: {:?}",
        t.elapsed()
    );

    // The agent restarts while containerd is down: it waits for containerd, then adopts the pods.
    let stopped = cluster::stop_agent(agent, false);
    ctrd.kill9();
    let mut agent = stopped.start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        matches!(agent.child.try_wait(), Ok(None)),
        "the agent waits for containerd instead of exiting:\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 20)
    );
    ctrd.restart();
    let restarts = k.jsonpath("fresh", "{.status.containerStatuses[0].restartCount}");
    k.wait_for(
        "the agent adopted the pods",
        Duration::from_secs(60),
        |_| {
            std::fs::read_to_string(&agent.log)
                .unwrap_or_default()
                .matches("adopted pod state from containerd")
                .count()
                >= 3
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(container_id(&k, "keeper"), keeper_id);
    assert_eq!(
        k.jsonpath("keeper", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    assert_eq!(
        k.jsonpath("fresh", "{.status.containerStatuses[0].restartCount}"),
        restarts
    );
    assert!(alive(keeper_pid), "the same process still runs");
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    assert!(!log.contains("panicked"), "{}", tail(&log, 40));

    drop(cleanup);
    drop((agent, dir, server, reg, ctrd));
    support::remove_cgroup_parent("skiff-test-cr");
}
