//! securityContext end to end: runAsNonRoot, runAsUser/runAsGroup/supplementalGroups, fsGroup on every
//! written volume kind and emptyDir (with fsGroupChangePolicy), readOnlyRootFilesystem,
//! allowPrivilegeEscalation, and seccomp (RuntimeDefault, Unconfined, Localhost). Real kubectl →
//! skiff-apiserver (in this process) → the real `skiff-agent` binary → a private containerd → runc.
//! Pods use the host network and are bound by `spec.nodeName`. Needs root.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::cluster::{self, Cluster, Kubectl, PodCleanup, Setup, wait_until};

/// Write a pod manifest (one container `main` of busybox:test running `script`) and create it.
fn create_pod(k: &Kubectl, dir: &std::path::Path, node: &str, name: &str, extra: Value) {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "hostNetwork": true,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:test"}],
        }
    });
    merge(&mut pod["spec"], extra);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, pod.to_string()).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &path.to_string_lossy()]);
}

/// Merge `extra` into `base`; `containers` objects merge index by index.
fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (Value::Array(b), Value::Array(e)) if b.len() == e.len() => {
            for (b, e) in b.iter_mut().zip(e) {
                merge(b, e);
            }
        }
        (b, e) => *b = e,
    }
}

fn script(s: &str) -> Value {
    json!([{"command": ["sh", "-c", format!("{s}; echo done; sleep 3600")]}])
}

fn logs_when_done(k: &Kubectl, pod: &str) -> String {
    let mut logs = String::new();
    k.wait_for(
        &format!("{pod} printed done"),
        Duration::from_secs(90),
        |k| {
            let out = k.run(&["logs", pod], None);
            logs = String::from_utf8_lossy(&out.stdout).into_owned();
            logs.lines().any(|l| l == "done")
        },
    );
    logs
}

fn waiting(k: &Kubectl, pod: &str) -> (String, String) {
    let reason = k.jsonpath(pod, "{.status.containerStatuses[0].state.waiting.reason}");
    let message = k.jsonpath(pod, "{.status.containerStatuses[0].state.waiting.message}");
    (reason, message)
}

fn assert_config_error(k: &Kubectl, pod: &str, want: &str) {
    let mut last = (String::new(), String::new());
    k.wait_for(
        &format!("{pod}: CreateContainerConfigError with {want:?}"),
        Duration::from_secs(90),
        |k| {
            last = waiting(k, pod);
            last.0 == "CreateContainerConfigError" && last.1.contains(want)
        },
    );
    let table = k.ok(&["get", "pod", pod]);
    assert!(
        table.contains("CreateContainerConfigError"),
        "kubectl get shows the reason: {table}"
    );
}

/// A cgroup parent of this test's own, apart from a lab's `skiff`.
fn agent_args(_: &support::TempDir) -> Vec<std::ffi::OsString> {
    vec!["--cgroup-parent".into(), "skiff-test-sc".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_context_is_enforced() {
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
        name: "secctx",
        tag: "sc",
        busybox_dir: "sc-busybox",
        applets: &[
            "sh", "echo", "sleep", "cat", "id", "stat", "touch", "grep", "unshare", "mkdir", "true",
        ],
        cluster_cidr: "10.241.0.0/16",
        service_cidr: "10.242.0.0/16",
        agent_args,
    });
    let pods = [
        "nonroot-refused",
        "nonroot-uid0",
        "nonroot-ok",
        "ids",
        "locked",
        "sc-default",
        "sc-unconfined",
        "sc-missing",
        "sc-local",
    ];
    let cleanup = PodCleanup(k.clone(), pods.to_vec());
    // A Localhost profile in the agent's `<root-dir>/seccomp/` that refuses mkdir.
    let seccomp_dir = dir.join("agent").join("seccomp");
    std::fs::create_dir_all(&seccomp_dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        seccomp_dir.join("deny-mkdir.json"),
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "configmap", "cm", "--from-literal=k=v"]);
    k.ok(&["create", "secret", "generic", "sec", "--from-literal=p=s"]);

    let non_root = json!({"securityContext": {"runAsNonRoot": true}});
    let mut refused = non_root.clone();
    merge(&mut refused, json!({"containers": script("id")}));
    create_pod(&k, &dir.path, &node, "nonroot-refused", refused);
    let mut uid0 = non_root.clone();
    merge(
        &mut uid0,
        json!({"containers": [{"command": ["sh", "-c", "id; sleep 3600"], "securityContext": {"runAsUser": 0}}]}),
    );
    create_pod(&k, &dir.path, &node, "nonroot-uid0", uid0);
    let mut ok = non_root.clone();
    merge(
        &mut ok,
        json!({"containers": [{"command": ["sh", "-c", "id; echo done; sleep 3600"], "securityContext": {"runAsUser": 1000}}]}),
    );
    create_pod(&k, &dir.path, &node, "nonroot-ok", ok);

    // Identity and fsGroup on every volume kind the agent writes, plus emptyDir.
    let mounts = json!([
        {"name": "scratch", "mountPath": "/v/scratch"},
        {"name": "cm", "mountPath": "/v/cm"},
        {"name": "sec", "mountPath": "/v/sec"},
        {"name": "dw", "mountPath": "/v/dw"},
        {"name": "proj", "mountPath": "/v/proj"},
    ]);
    create_pod(
        &k,
        &dir.path,
        &node,
        "ids",
        json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000],
                                "fsGroup": 2000, "fsGroupChangePolicy": "OnRootMismatch"},
            "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "cm", "configMap": {"name": "cm"}},
                {"name": "sec", "secret": {"secretName": "sec"}},
                {"name": "dw", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                {"name": "proj", "projected": {"sources": [{"configMap": {"name": "cm"}}]}},
            ],
            "containers": [{
                "command": ["sh", "-c", "id; for v in scratch cm sec dw proj; do echo vol-$v=$(stat -c '%g %A' /v/$v/); done; \
                             echo cm-file=$(stat -L -c '%g' /v/cm/k); touch /v/scratch/new && echo new=$(stat -c '%g' /v/scratch/new); \
                             echo done; sleep 3600"],
                "volumeMounts": mounts,
            }],
        }),
    );
    create_pod(
        &k,
        &dir.path,
        &node,
        "locked",
        json!({"containers": [{
            "command": ["sh", "-c", "touch /rootfs-write 2>/dev/null && echo rootfs=rw || echo rootfs=ro; \
                         grep NoNewPrivs /proc/self/status; echo done; sleep 3600"],
            "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
        }]}),
    );
    let probe = "grep Seccomp: /proc/self/status; unshare -U true 2>&1 && echo unshare=ok || echo unshare=refused";
    create_pod(
        &k,
        &dir.path,
        &node,
        "sc-default",
        json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}, "containers": script(probe)}),
    );
    // The container's profile overrides the pod's.
    create_pod(
        &k,
        &dir.path,
        &node,
        "sc-unconfined",
        json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
               "containers": [{"command": ["sh", "-c", format!("{probe}; echo done; sleep 3600")],
                               "securityContext": {"seccompProfile": {"type": "Unconfined"}}}]}),
    );
    create_pod(
        &k,
        &dir.path,
        &node,
        "sc-missing",
        json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "nope.json"}},
               "containers": script("true")}),
    );
    create_pod(
        &k,
        &dir.path,
        &node,
        "sc-local",
        json!({"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "deny-mkdir.json"}},
               "containers": script("mkdir /tmp/x 2>&1 && echo mkdir=ok || echo mkdir=refused")}),
    );

    // runAsNonRoot.
    assert_config_error(
        &k,
        "nonroot-refused",
        "container has runAsNonRoot and image will run as root",
    );
    assert_config_error(&k, "nonroot-uid0", "runAsUser breaks non-root policy");
    let logs = logs_when_done(&k, "nonroot-ok");
    assert!(logs.contains("uid=1000"), "runAsUser 1000: {logs}");
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=nonroot-refused",
    ]);
    assert!(
        events.contains("runAsNonRoot"),
        "an event names the cause: {events}"
    );

    // Identity and fsGroup.
    let logs = logs_when_done(&k, "ids");
    let id_line = logs.lines().next().unwrap_or_default();
    assert!(
        id_line.starts_with("uid=1000 gid=3000 groups=")
            && id_line.contains("2000")
            && id_line.contains("4000"),
        "uid, gid and supplementary groups (fsGroup included): {logs}"
    );
    for v in ["scratch", "cm", "sec", "dw", "proj"] {
        let line = logs
            .lines()
            .find(|l| l.starts_with(&format!("vol-{v}=")))
            .unwrap_or_else(|| panic!("no line for {v}: {logs}"));
        let (gid, mode) = line
            .split_once('=')
            .and_then(|(_, r)| r.split_once(' '))
            .unwrap_or_else(|| panic!("bad line {line}"));
        assert_eq!(gid, "2000", "volume {v} belongs to the fsGroup: {line}");
        assert_eq!(
            mode.chars().nth(6),
            Some('s'),
            "volume {v} has the setgid bit with group execute: {line}"
        );
    }
    assert!(logs.contains("cm-file=2000"), "configMap files: {logs}");
    assert!(
        logs.contains("new=2000"),
        "files created in emptyDir inherit the fsGroup: {logs}"
    );

    // readOnlyRootFilesystem and allowPrivilegeEscalation: false.
    let logs = logs_when_done(&k, "locked");
    assert!(logs.contains("rootfs=ro"), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.starts_with("NoNewPrivs:") && l.ends_with('1')),
        "{logs}"
    );

    // seccomp.
    let logs = logs_when_done(&k, "sc-default");
    assert!(
        logs.lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('2')),
        "RuntimeDefault installs a filter: {logs}"
    );
    assert!(
        logs.contains("Operation not permitted") && logs.contains("unshare=refused"),
        "unshare is refused with EPERM under RuntimeDefault: {logs}"
    );
    assert_eq!(
        k.ready("sc-default"),
        "True",
        "the container otherwise works"
    );
    let logs = logs_when_done(&k, "sc-unconfined");
    assert!(
        logs.lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('0')),
        "Unconfined: {logs}"
    );
    assert!(
        logs.contains("unshare=ok"),
        "without the filter the same call works: {logs}"
    );
    assert_config_error(&k, "sc-missing", "could not load seccomp profile");
    let logs = logs_when_done(&k, "sc-local");
    assert!(logs.contains("mkdir=refused"), "Localhost profile: {logs}");

    wait_until("all pods reported", Duration::from_secs(1), || true);
    drop(cleanup);
    drop((agent, dir, server, reg, ctrd));
    support::remove_cgroup_parent("skiff-test-sc");
}
