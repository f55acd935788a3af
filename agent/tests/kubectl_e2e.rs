//! Issue 4's user-visible cases through real kubectl 1.32: CrashLoopBackOff in `kubectl get pods`,
//! `Init:Error` for a failing init container with restartPolicy Never, env from fieldRef in `kubectl logs`,
//! configMap volume content through `kubectl exec`, OOMKilled (memory limit on this machine's cgroups) in
//! `get pods`/`describe`/lastState, and an agent restart (kill -9) that disturbs nothing — including an exit
//! that happened while the agent was down. skiff-apiserver runs in this process, the real `skiff-agent`
//! binary drives a private containerd. Pods use the host network and are bound by `spec.nodeName`.
//! Needs root.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{self, Cluster, Kubectl, PodCleanup, Setup};

fn create(k: &Kubectl, dir: &std::path::Path, node: &str, name: &str, spec: Value) {
    let mut spec = spec;
    spec["nodeName"] = json!(node);
    spec["hostNetwork"] = json!(true);
    spec["terminationGracePeriodSeconds"] = json!(1);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec});
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, pod.to_string()).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &path.to_string_lossy()]);
}

fn main_container(command: &str) -> Value {
    json!({"name": "main", "image": "busybox:test", "command": ["sh", "-c", command]})
}

/// The STATUS column of `kubectl get pod <name>`.
fn status_column(k: &Kubectl, pod: &str) -> String {
    let out = k.run(&["get", "pod", pod, "--no-headers"], None);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

fn wait_status(k: &Kubectl, pod: &str, want: &str, timeout: Duration) {
    let mut seen = Vec::new();
    k.wait_for(
        &format!("kubectl get pod {pod} shows {want}"),
        timeout,
        |k| {
            let s = status_column(k, pod);
            if seen.last() != Some(&s) {
                seen.push(s.clone());
            }
            s == want
        },
    );
}

/// A ready (loopback-only) CNI network and a cgroup parent of this test's own, apart from a lab's `skiff`.
fn agent_args(dir: &support::TempDir) -> Vec<std::ffi::OsString> {
    cluster::ready_network(dir);
    vec!["--cgroup-parent".into(), "skiff-test-ke".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue4_cases_through_kubectl() {
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
        name: "kubectl-e2e",
        tag: "ke",
        busybox_dir: "ke-busybox",
        applets: &["sh", "echo", "sleep", "cat", "true", "false"],
        cluster_cidr: "10.239.0.0/16",
        service_cidr: "10.240.0.0/16",
        agent_args,
    });
    let pods = vec![
        "crash",
        "once",
        "badcmd",
        "badcmd-loop",
        "init-fail",
        "env",
        "cm",
        "oom",
        "oom-once",
        "steady",
        "dies",
        "after",
    ];
    support::cluster::wait_node_ready(&k, &node, Duration::from_secs(60));
    let cleanup = PodCleanup(k.clone(), pods);
    k.ok(&[
        "create",
        "configmap",
        "web",
        "--from-literal=greeting=hello-from-configmap",
    ]);

    create(
        &k,
        &dir.path,
        &node,
        "crash",
        json!({"containers": [main_container("echo crashing; exit 1")]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "init-fail",
        json!({"restartPolicy": "Never",
               "initContainers": [{"name": "setup", "image": "busybox:test", "command": ["sh", "-c", "exit 3"]}],
               "containers": [main_container("echo never")]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "env",
        json!({"restartPolicy": "Never", "containers": [{
        "name": "main", "image": "busybox:test",
        "command": ["sh", "-c", "echo name=$MY_NAME ns=$MY_NS node=$MY_NODE ip=$MY_IP uid=$MY_UID"],
        "env": [
            {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ]}]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "cm",
        json!({"volumes": [{"name": "web", "configMap": {"name": "web"}}],
               "containers": [{"name": "main", "image": "busybox:test", "command": ["sleep", "3600"],
                               "volumeMounts": [{"name": "web", "mountPath": "/etc/web"}]}]}),
    );
    // PID 1 itself grows (a doubling shell string) past a 20Mi limit: the kernel kills it.
    let hog = "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done";
    let limited = |cmd: &str| {
        let mut c = main_container(cmd);
        c["resources"] = json!({"limits": {"memory": "20Mi"}});
        c
    };
    create(
        &k,
        &dir.path,
        &node,
        "oom",
        json!({"containers": [limited(hog)]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "oom-once",
        json!({"restartPolicy": "Never", "containers": [limited(hog)]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "steady",
        json!({"containers": [main_container("echo up; sleep 3600")]}),
    );
    // Fails once, then runs: its lastState must survive the agent restart.
    create(
        &k,
        &dir.path,
        &node,
        "once",
        json!({"restartPolicy": "OnFailure",
               "volumes": [{"name": "data", "emptyDir": {}}],
               "containers": [{"name": "main", "image": "busybox:test",
                               "command": ["sh", "-c", "if [ -f /data/ran ]; then sleep 3600; else : > /data/ran; exit 4; fi"],
                               "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "dies",
        json!({"restartPolicy": "Never", "containers": [main_container("sleep 1000000")]}),
    );

    // A command the image does not have: the attempt ends as StartError (exit 128), as with CRI.
    let missing =
        || json!({"name": "main", "image": "busybox:test", "command": ["/no/such/binary"]});
    create(
        &k,
        &dir.path,
        &node,
        "badcmd",
        json!({"restartPolicy": "Never", "containers": [missing()]}),
    );
    create(
        &k,
        &dir.path,
        &node,
        "badcmd-loop",
        json!({"containers": [missing()]}),
    );

    // CrashLoopBackOff in the STATUS column.
    wait_status(&k, "crash", "CrashLoopBackOff", Duration::from_secs(120));
    let restarts = k.jsonpath("crash", "{.status.containerStatuses[0].restartCount}");
    assert!(
        restarts.parse::<u32>().is_ok_and(|n| n >= 1),
        "restarts: {restarts}"
    );
    let prev = k.ok(&["logs", "crash", "--previous"]);
    assert!(prev.contains("crashing"), "{prev}");

    wait_status(&k, "badcmd", "StartError", Duration::from_secs(90));
    assert_eq!(k.jsonpath("badcmd", "{.status.phase}"), "Failed");
    assert_eq!(
        k.jsonpath(
            "badcmd",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "128"
    );
    let message = k.jsonpath(
        "badcmd",
        "{.status.containerStatuses[0].state.terminated.message}",
    );
    assert!(message.contains("/no/such/binary"), "{message}");
    k.wait_for(
        "badcmd-loop retried with back-off",
        Duration::from_secs(90),
        |k| {
            k.jsonpath(
                "badcmd-loop",
                "{.status.containerStatuses[0].lastState.terminated.reason}",
            ) == "StartError"
                && k.jsonpath(
                    "badcmd-loop",
                    "{.status.containerStatuses[0].state.waiting.reason}",
                ) == "CrashLoopBackOff"
        },
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=badcmd",
    ]);
    assert!(
        events.contains("/no/such/binary"),
        "an event names the cause: {events}"
    );

    // Init:Error, and the pod failed.
    wait_status(&k, "init-fail", "Init:Error", Duration::from_secs(90));
    assert_eq!(k.jsonpath("init-fail", "{.status.phase}"), "Failed");
    assert_eq!(
        k.jsonpath(
            "init-fail",
            "{.status.initContainerStatuses[0].state.terminated.exitCode}"
        ),
        "3"
    );

    // env from fieldRef in `kubectl logs`.
    wait_status(&k, "env", "Completed", Duration::from_secs(90));
    let uid = k.jsonpath("env", "{.metadata.uid}");
    let logs = k.ok(&["logs", "env"]);
    let want = format!("name=env ns=default node={node} ip=127.0.0.1 uid={uid}");
    assert_eq!(logs.trim_end(), want);

    // configMap volume content through `kubectl exec`.
    k.ok(&["wait", "--for=condition=Ready", "pod/cm", "--timeout=90s"]);
    let out = k.ok(&["exec", "cm", "--", "cat", "/etc/web/greeting"]);
    assert_eq!(out, "hello-from-configmap");

    // OOMKilled: STATUS of the Never pod, describe, and lastState of the restarted one.
    wait_status(&k, "oom-once", "OOMKilled", Duration::from_secs(90));
    assert_eq!(
        k.jsonpath(
            "oom-once",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );
    let described = k.ok(&["describe", "pod", "oom-once"]);
    assert!(
        described.contains("Reason:       OOMKilled") && described.contains("Exit Code:    137"),
        "{described}"
    );
    k.wait_for(
        "oom restarted after an OOM kill",
        Duration::from_secs(90),
        |k| {
            k.jsonpath(
                "oom",
                "{.status.containerStatuses[0].lastState.terminated.reason}",
            ) == "OOMKilled"
        },
    );
    assert_eq!(
        k.jsonpath(
            "oom",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "137"
    );
    assert!(
        k.jsonpath("oom", "{.status.containerStatuses[0].restartCount}")
            .parse::<u32>()
            .is_ok_and(|n| n >= 1)
    );

    // Agent restart without disruption.
    let id_of =
        |k: &Kubectl, pod: &str| k.jsonpath(pod, "{.status.containerStatuses[0].containerID}");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/steady",
        "pod/dies",
        "pod/once",
        "--timeout=90s",
    ]);
    let last_state = |k: &Kubectl| {
        (
            k.jsonpath("once", "{.status.containerStatuses[0].restartCount}"),
            k.jsonpath(
                "once",
                "{.status.containerStatuses[0].lastState.terminated.exitCode}",
            ),
            k.jsonpath(
                "once",
                "{.status.containerStatuses[0].lastState.terminated.finishedAt}",
            ),
            id_of(k, "once"),
        )
    };
    let once_before = last_state(&k);
    assert_eq!(once_before.0, "1");
    assert_eq!(once_before.1, "4");
    let before = (
        id_of(&k, "steady"),
        k.jsonpath("steady", "{.status.containerStatuses[0].restartCount}"),
        k.jsonpath("steady", "{.status.podIP}"),
    );
    // kill -9 the agent; while it is down the `dies` container is killed: the new agent must report it.
    let dies_id = id_of(&k, "dies");
    let stopped = cluster::stop_agent(agent, true);
    let tasks = std::process::Command::new("ctr")
        .args([
            "--address",
            &ctrd.socket.to_string_lossy(),
            "-n",
            "skiff-ke-test",
            "task",
            "ls",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let short = dies_id.trim_start_matches("containerd://");
    let dies_pid: Option<i32> = tasks
        .lines()
        .find(|l| l.starts_with(short))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok());
    let dies_pid = dies_pid.unwrap_or_else(|| panic!("no task for {short} in {tasks}"));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(dies_pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        k.ready("steady"),
        "True",
        "pods stay Ready while the agent is down"
    );
    let agent = stopped.start();
    create(
        &k,
        &dir.path,
        &node,
        "after",
        json!({"containers": [main_container("sleep 3600")]}),
    );
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/after",
        "--timeout=90s",
    ]);
    k.wait_for(
        "the exit during the restart is reported",
        Duration::from_secs(60),
        |k| {
            k.jsonpath(
                "dies",
                "{.status.containerStatuses[0].state.terminated.exitCode}",
            ) == "137"
        },
    );
    assert_eq!(k.jsonpath("dies", "{.status.phase}"), "Failed");
    let after = (
        id_of(&k, "steady"),
        k.jsonpath("steady", "{.status.containerStatuses[0].restartCount}"),
        k.jsonpath("steady", "{.status.podIP}"),
    );
    assert_eq!(
        before, after,
        "container ID, restartCount and pod IP unchanged"
    );
    assert_eq!(k.ready("steady"), "True");
    assert_eq!(status_column(&k, "steady"), "Running");
    assert_eq!(
        last_state(&k),
        once_before,
        "lastState (exit code, finish time) survives the agent restart"
    );
    let logs = k.ok(&["logs", "steady"]);
    assert_eq!(logs.matches("up").count(), 1, "not restarted: {logs}");

    drop(cleanup);
    drop((agent, dir, server, reg, ctrd));
    support::remove_cgroup_parent("skiff-test-ke");
}
