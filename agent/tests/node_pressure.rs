//! Node pressure and reserved resources end to end: real kubectl → skiff-apiserver (in this process) → the
//! real `skiff-agent` binary → a private containerd. An impossible hard eviction threshold puts the node
//! under memory pressure (condition, taint, unschedulable pods) and evicts the pods running there one at
//! a time, in the kubelet's order, and refuses new BestEffort ones; a soft threshold evicts only after its
//! grace period, gracefully; `--system-reserved` lowers allocatable.
//! Needs root.

mod support;

use std::ffi::OsString;
use std::time::Duration;

use support::TempDir;
use support::cluster::{self, Cluster, PodCleanup, Setup};

/// Thresholds no machine satisfies: 100000 TiB of free memory, a completely empty disk and more free pids
/// than `pid_max` can be (at most 2^22).
fn impossible_thresholds(dir: &TempDir) -> Vec<OsString> {
    let mut args = cluster::ready_network(dir);
    args.push("--eviction-hard".into());
    args.push("memory.available<100000Ti,nodefs.available<100%,pid.available<5000000".into());
    args
}

fn reserve_a_gibibyte(dir: &TempDir) -> Vec<OsString> {
    let mut args = cluster::ready_network(dir);
    args.push("--system-reserved".into());
    args.push("memory=1Gi".into());
    args
}

fn node_json(k: &cluster::Kubectl, node: &str) -> serde_json::Value {
    let out = k.ok(&["get", "node", node, "-o", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("node json: {e}"))
}

fn condition(node: &serde_json::Value, type_: &str) -> serde_json::Value {
    node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_default()
}

/// `12345Ki` → bytes.
fn ki(q: &serde_json::Value) -> u64 {
    q.as_str()
        .and_then(|s| s.strip_suffix("Ki"))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("not a Ki quantity: {q}"))
        * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_taints_the_node() {
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
        name: "pressure",
        tag: "mp",
        busybox_dir: "mp-busybox",
        applets: &["sh", "sleep"],
        cluster_cidr: "10.241.0.0/16",
        service_cidr: "10.242.0.0/16",
        agent_args: impossible_thresholds,
    });
    let cleanup = PodCleanup(k.clone(), vec!["waiting"]);
    cluster::wait_node_ready(&k, &node, Duration::from_secs(60));

    let n = node_json(&k, &node);
    let mem = condition(&n, "MemoryPressure");
    assert_eq!(mem["status"], "True", "{mem}");
    assert_eq!(mem["reason"], "KubeletHasInsufficientMemory");
    assert_eq!(mem["message"], "kubelet has insufficient memory available");
    let disk = condition(&n, "DiskPressure");
    assert_eq!(disk["status"], "True", "{disk}");
    assert_eq!(disk["reason"], "KubeletHasDiskPressure");
    assert_eq!(disk["message"], "kubelet has disk pressure");
    let pid = condition(&n, "PIDPressure");
    assert_eq!(pid["status"], "True", "{pid}");
    assert_eq!(pid["reason"], "KubeletHasInsufficientPID");
    assert_eq!(pid["message"], "kubelet has insufficient PID available");
    assert_eq!(
        condition(&n, "Ready")["status"],
        "True",
        "pressure is not NotReady"
    );
    assert_eq!(
        n["status"]["allocatable"]["memory"], "0Ki",
        "allocatable memory is capacity minus the (huge) threshold, floored at 0"
    );
    assert_eq!(n["status"]["allocatable"]["ephemeral-storage"], "0Ki");

    k.wait_for("the pressure taints", Duration::from_secs(30), |k| {
        let taints = node_json(k, &node)["spec"]["taints"].clone();
        let mut keys: Vec<String> = taints
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter(|t| t["effect"] == "NoSchedule")
                    .filter_map(|t| t["key"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        keys.sort();
        keys == [
            "node.kubernetes.io/disk-pressure",
            "node.kubernetes.io/memory-pressure",
            "node.kubernetes.io/pid-pressure",
        ]
    });

    // A pod without a toleration is not scheduled here.
    let manifest = dir.join("waiting.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: waiting}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: main\n    image: busybox:test\n    command: [sleep, '3600']\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()]);
    k.wait_for("a FailedScheduling event", Duration::from_secs(30), |k| {
        let out = k.run(
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=waiting",
                "-o",
                "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
            ],
            None,
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().any(|l| {
            l.starts_with("FailedScheduling: ")
                && ["memory", "disk", "pid"]
                    .iter()
                    .any(|p| l.contains(&format!("node.kubernetes.io/{p}-pressure")))
        })
    });
    assert_eq!(k.jsonpath("waiting", "{.status.phase}"), "Pending");
    assert_eq!(k.jsonpath("waiting", "{.spec.nodeName}"), "");

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_reserved_lowers_allocatable() {
    let Cluster {
        ctrd,
        reg,
        dir: _dir,
        server,
        node,
        agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "reserved",
        tag: "rs",
        busybox_dir: "rs-busybox",
        applets: &["sh"],
        cluster_cidr: "10.243.0.0/16",
        service_cidr: "10.246.0.0/16",
        agent_args: reserve_a_gibibyte,
    });
    cluster::wait_node_ready(&k, &node, Duration::from_secs(60));
    let n = node_json(&k, &node);
    let capacity = ki(&n["status"]["capacity"]["memory"]);
    let allocatable = ki(&n["status"]["allocatable"]["memory"]);
    // capacity − system-reserved (1Gi) − the default hard threshold memory.available<100Mi.
    assert_eq!(capacity - allocatable, (1 << 30) + (100 << 20), "{n}");
    assert_eq!(
        n["status"]["allocatable"]["cpu"],
        n["status"]["capacity"]["cpu"]
    );
    // The default thresholds are not crossed on this machine.
    assert_eq!(condition(&n, "MemoryPressure")["status"], "False");
    assert_eq!(
        condition(&n, "MemoryPressure")["reason"],
        "KubeletHasSufficientMemory"
    );
    let taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
    assert!(
        !taints
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/memory-pressure"),
        "{taints:?}"
    );

    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}

#[test]
fn bad_flags_stop_the_agent_with_a_clear_error() {
    for (flag, value, says) in [
        ("--eviction-hard", "memory.available>1Gi", "expected"),
        (
            "--eviction-hard",
            "memory.free<1Gi",
            "unknown eviction signal",
        ),
        (
            "--eviction-hard",
            "nodefs.available<110%",
            "between 0% and 100%",
        ),
        ("--system-reserved", "memory=lots", "memory"),
        ("--kube-reserved", "gpu=1", "unknown resource"),
        ("--image-gc-high-threshold", "101", "not in 0..=100"),
        (
            "--eviction-pressure-transition-period",
            "5d",
            "unknown unit",
        ),
        ("--eviction-soft", "memory.available>1Gi", "expected"),
        (
            "--eviction-soft-grace-period",
            "memory.available=soon",
            "duration",
        ),
        ("--eviction-max-pod-grace-period", "ten", "invalid digit"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
            .args(["--kubeconfig", "/nonexistent", "--node-name", "n"])
            .args(["--registry-config", "/nonexistent", flag, value])
            .output()
            .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag} {value}: {stderr}"
        );
    }
    // Thresholds that contradict each other stop the agent before it touches anything.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .args(["--kubeconfig", "/nonexistent", "--node-name", "n"])
        .args(["--registry-config", "/nonexistent"])
        .args([
            "--image-gc-high-threshold",
            "70",
            "--image-gc-low-threshold",
            "90",
        ])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "--image-gc-low-threshold (90) must not be above --image-gc-high-threshold (70)"
        ),
        "{stderr}"
    );
    // A soft threshold without a grace period is refused, as by the kubelet.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .args(["--kubeconfig", "/nonexistent", "--node-name", "n"])
        .args(["--registry-config", "/nonexistent"])
        .args(["--eviction-soft", "memory.available<1Gi"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--eviction-soft")
            && stderr.contains(
                "grace period must be specified for the soft eviction threshold memory.available"
            ),
        "{stderr}"
    );
}

fn own_cgroup_parent(_: &TempDir) -> Vec<OsString> {
    vec!["--cgroup-parent".into(), "skiff-test-ev".into()]
}

fn create(k: &cluster::Kubectl, dir: &TempDir, name: &str, node: &str, resources: &str) {
    let manifest = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  \
             hostNetwork: true\n  terminationGracePeriodSeconds: 30\n  containers:\n  - name: main\n    \
             image: busybox:test\n    command: [sleep, '3600']\n    resources: {resources}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_pressure_evicts_pods_one_at_a_time() {
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
        name: "evict",
        tag: "ev",
        busybox_dir: "ev-busybox",
        applets: &["sh", "sleep"],
        cluster_cidr: "10.236.0.0/16",
        service_cidr: "10.237.0.0/16",
        agent_args: own_cgroup_parent,
    });
    let cleanup = PodCleanup(k.clone(), vec!["besteffort", "guaranteed", "late"]);
    let fixed = "{requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: 100m, memory: 64Mi}}";
    create(&k, &dir, "besteffort", &node, "{}");
    create(&k, &dir, "guaranteed", &node, fixed);
    for pod in ["besteffort", "guaranteed"] {
        k.wait_for(&format!("{pod} Ready"), Duration::from_secs(90), |k| {
            k.ready(pod) == "True"
        });
    }

    // The agent comes back with a threshold no machine satisfies, checked every 3 s.
    let agent = cluster::stop_agent(agent, false).start_with(&[
        ("--eviction-hard", "memory.available<100000Ti"),
        ("--eviction-monitoring-period", "3s"),
    ]);
    let phase = |k: &cluster::Kubectl, pod: &str| k.jsonpath(pod, "{.status.phase}");
    // BestEffort uses more than its (zero) request; Guaranteed stays within its 64Mi: BestEffort goes first.
    k.wait_for("besteffort evicted", Duration::from_secs(60), |k| {
        phase(k, "besteffort") == "Failed"
    });
    assert_eq!(phase(&k, "guaranteed"), "Running", "one pod at a time");
    assert_eq!(k.jsonpath("besteffort", "{.status.reason}"), "Evicted");
    let message = k.jsonpath("besteffort", "{.status.message}");
    assert!(
        message.starts_with(
            "The node was low on resource: memory. Threshold quantity: 100000Ti, available: "
        ),
        "{message}"
    );
    assert_eq!(
        k.jsonpath(
            "besteffort",
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "TerminationByKubelet"
    );
    k.wait_for(
        "besteffort's container killed",
        Duration::from_secs(10),
        |k| {
            k.jsonpath(
                "besteffort",
                "{.status.containerStatuses[0].state.terminated.exitCode}",
            ) == "137"
        },
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=besteffort,reason=Evicted",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "an Evicted event");
    // The node's event, as the kubelet's eviction manager records it, once for the whole episode.
    let node_events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=Node,involvedObject.name={node},reason=EvictionThresholdMet"),
        "-o",
        "jsonpath={range .items[*]}{.type} {.message}{\"\\n\"}{end}",
    ]);
    assert_eq!(
        node_events.trim(),
        "Warning Attempting to reclaim memory",
        "{node_events}"
    );

    // The threshold stays crossed: the Guaranteed pod goes next, at once despite its 30 s grace period.
    k.wait_for("guaranteed evicted", Duration::from_secs(60), |k| {
        phase(k, "guaranteed") == "Failed"
    });
    assert_eq!(k.jsonpath("guaranteed", "{.status.reason}"), "Evicted");

    // Admission: under memory pressure a new BestEffort pod is refused before anything starts.
    create(&k, &dir, "late", &node, "{}");
    k.wait_for("late refused", Duration::from_secs(30), |k| {
        phase(k, "late") == "Failed"
    });
    assert_eq!(k.jsonpath("late", "{.status.reason}"), "Evicted");
    assert_eq!(
        k.jsonpath("late", "{.status.message}"),
        "The node had condition: [MemoryPressure]. "
    );
    assert_eq!(
        k.jsonpath("late", "{.status.containerStatuses[0].containerID}"),
        "",
        "no container was started"
    );

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
    drop(dir);
    support::remove_cgroup_parent("skiff-test-ev");
}

fn own_cgroup_parent_soft(_: &TempDir) -> Vec<OsString> {
    vec!["--cgroup-parent".into(), "skiff-test-soft".into()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_threshold_evicts_gracefully_after_its_grace_period() {
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
        name: "soft",
        tag: "sf",
        busybox_dir: "sf-busybox",
        applets: &["sh", "sleep"],
        cluster_cidr: "10.224.0.0/16",
        service_cidr: "10.225.0.0/16",
        agent_args: own_cgroup_parent_soft,
    });
    let cleanup = PodCleanup(k.clone(), vec!["graceful"]);
    // Exits 0 on SIGTERM: a graceful stop, where a hard eviction's SIGKILL would give 137.
    let manifest = dir.join("graceful.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: graceful}}\nspec:\n  nodeName: {node}\n  \
             hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
             image: busybox:test\n    command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()]);
    k.wait_for("graceful Ready", Duration::from_secs(90), |k| {
        k.ready("graceful") == "True"
    });

    // A soft threshold no machine satisfies, 8 s of grace, 20 s for the evicted pod (above its own 1 s).
    let restarted = std::time::Instant::now();
    let agent = cluster::stop_agent(agent, false).start_with(&[
        ("--eviction-soft", "memory.available<100000Ti"),
        ("--eviction-soft-grace-period", "memory.available=8s"),
        ("--eviction-max-pod-grace-period", "20"),
        ("--eviction-monitoring-period", "2s"),
    ]);
    let phase = |k: &cluster::Kubectl| k.jsonpath("graceful", "{.status.phase}");
    k.wait_for("graceful evicted", Duration::from_secs(60), |k| {
        phase(k) == "Failed"
    });
    assert!(
        restarted.elapsed() >= Duration::from_secs(8),
        "evicted only after the grace period"
    );
    assert_eq!(k.jsonpath("graceful", "{.status.reason}"), "Evicted");
    let message = k.jsonpath("graceful", "{.status.message}");
    assert!(
        message.starts_with(
            "The node was low on resource: memory. Threshold quantity: 100000Ti, available: "
        ),
        "{message}"
    );
    assert_eq!(
        k.jsonpath(
            "graceful",
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "TerminationByKubelet"
    );
    k.wait_for(
        "graceful stopped by SIGTERM",
        Duration::from_secs(30),
        |k| {
            k.jsonpath(
                "graceful",
                "{.status.containerStatuses[0].state.terminated.exitCode}",
            ) == "0"
        },
    );
    let mem = condition(&node_json(&k, &node), "MemoryPressure");
    assert_eq!(
        mem["status"], "True",
        "soft thresholds raise conditions: {mem}"
    );

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
    drop(dir);
    support::remove_cgroup_parent("skiff-test-soft");
}

/// busybox:test as `busybox:once` too, so one name can be in use while the other is not; then `keeper`
/// (busybox:test, running) and `once` (busybox:once, finished after writing a line of log), on the host
/// network.
fn keeper_and_once(k: &cluster::Kubectl, dir: &TempDir, reg: &support::TestRegistry, node: &str) {
    support::run(
        "skopeo",
        &[
            "--insecure-policy",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{}/library/busybox:test", reg.host()),
            &format!("docker://{}/library/busybox:once", reg.host()),
        ],
    );
    for (name, image, cmd, policy) in [
        ("keeper", "busybox:test", "[sleep, '3600']", "Always"),
        ("once", "busybox:once", "[sh, -c, 'echo done']", "Never"),
    ] {
        let manifest = dir.join(format!("{name}.yaml"));
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  \
                 hostNetwork: true\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n  \
                 containers:\n  - name: main\n    image: {image}\n    command: {cmd}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        k.ok(&["create", "-f", &manifest.to_string_lossy()]);
    }
    k.wait_for("keeper Ready", Duration::from_secs(90), |k| {
        k.ready("keeper") == "True"
    });
    k.wait_for("once Succeeded", Duration::from_secs(90), |k| {
        k.jsonpath("once", "{.status.phase}") == "Succeeded"
    });
}

/// `ctr <what> ls` in a containerd namespace: `images -q` lists image names, `containers` has an IMAGE column.
fn ctr_ls(ctrd: &support::TestContainerd, namespace: &str, what: &[&str]) -> String {
    let out = std::process::Command::new("ctr")
        .arg("--address")
        .arg(&ctrd.socket)
        .args(["-n", namespace])
        .args(what)
        .output()
        .unwrap_or_else(|e| panic!("ctr: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn images_of(ctrd: &support::TestContainerd, namespace: &str) -> String {
    ctr_ls(ctrd, namespace, &["images", "ls", "-q"])
}

/// Image GC on (any usage is above 1 %), every 2 s, no minimum age.
fn eager_image_gc(_: &TempDir) -> Vec<OsString> {
    [
        "--image-gc-high-threshold",
        "1",
        "--image-gc-low-threshold",
        "0",
        "--image-minimum-gc-age",
        "0s",
        "--image-gc-period",
        "2s",
    ]
    .map(OsString::from)
    .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_gc_deletes_images_no_container_uses() {
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
        name: "imagegc",
        tag: "ig",
        busybox_dir: "ig-busybox",
        applets: &["sh", "sleep", "true"],
        cluster_cidr: "10.238.0.0/16",
        service_cidr: "10.239.0.0/16",
        agent_args: eager_image_gc,
    });
    let cleanup = PodCleanup(k.clone(), vec!["keeper", "once"]);
    keeper_and_once(&k, &dir, &reg, &node);
    let images = || images_of(&ctrd, "skiff-ig-test");
    // The exited container of the finished pod still counts as a use (it may restart, or be read with
    // --previous), however full the disk is.
    std::thread::sleep(Duration::from_secs(5));
    let present = images();
    assert!(
        present.contains("docker.io/library/busybox:once")
            && present.contains("docker.io/library/busybox:test"),
        "{present}"
    );
    // Once the pod is gone nothing uses busybox:once: the next pass deletes it; busybox:test stays.
    k.ok(&["delete", "pod", "once", "--wait=true"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while images().contains("busybox:once") {
        assert!(
            std::time::Instant::now() < deadline,
            "busybox:once not deleted: {}\nagent log:\n{}",
            images(),
            cluster::tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 20)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(images().contains("docker.io/library/busybox:test"));
    assert_eq!(k.ready("keeper"), "True");
    // Below 0 % cannot be reached: the node gets the kubelet's warning.
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.kind=Node,involvedObject.name={node}"),
    ]);
    assert!(
        events.contains("FreeDiskSpaceFailed")
            && events.contains("Failed to garbage collect required amount of images"),
        "{events}"
    );
    drop(cleanup);
    drop(agent);
    drop(server);
    drop(ctrd);
    drop(reg);
}

/// Under a crossed nodefs threshold (one file system for nodefs and imagefs) the eviction manager first
/// removes the dead container of the finished pod (with its log), then the image nothing uses any more, and
/// only then evicts a pod, as the kubelet's `reclaimNodeLevelResources`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_pressure_reclaims_dead_containers_and_images_before_evicting() {
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
        name: "diskgc",
        tag: "dg",
        busybox_dir: "dg-busybox",
        applets: &["sh", "sleep", "true"],
        cluster_cidr: "10.240.0.0/16",
        service_cidr: "10.241.0.0/16",
        agent_args: cluster::no_agent_args,
    });
    let cleanup = PodCleanup(k.clone(), vec!["keeper", "once"]);
    keeper_and_once(&k, &dir, &reg, &node);
    let containers = || ctr_ls(&ctrd, "skiff-dg-test", &["containers", "ls"]);
    let uid = k.jsonpath("once", "{.metadata.uid}");
    let once_log = dir
        .join("pods")
        .join(format!("default_once_{uid}"))
        .join("main")
        .join("0.log");
    assert!(containers().contains("busybox:once"), "{}", containers());
    let listing = || support::run("find", &[&dir.join("pods").to_string_lossy()]);
    assert!(once_log.exists(), "{}:\n{}", once_log.display(), listing());
    // Periodic image GC stays off (the harness's 100 %): only the eviction manager deletes anything. No
    // containerd root: the imagefs is the nodefs, so a nodefs signal reclaims containers and images.
    let no_root = dir.join("no-containerd-root");
    let agent = cluster::stop_agent(agent, false).start_with(&[
        ("--eviction-hard", "nodefs.available<100%"),
        ("--eviction-monitoring-period", "3s"),
        ("--image-minimum-gc-age", "0s"),
        ("--containerd-root", &no_root.to_string_lossy()),
    ]);
    k.wait_for("keeper evicted", Duration::from_secs(60), |k| {
        k.jsonpath("keeper", "{.status.reason}") == "Evicted"
    });
    assert!(!containers().contains("busybox:once"), "{}", containers());
    assert!(!once_log.exists(), "the dead container's log goes with it");
    assert!(!images_of(&ctrd, "skiff-dg-test").contains("busybox:once"));
    assert_eq!(
        k.jsonpath("once", "{.status.phase}"),
        "Succeeded",
        "a finished pod keeps its status"
    );
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    let at = |what: &str| log.find(what);
    let (containers_at, images_at, evicted_at) = (
        at("eviction manager: deleted dead containers"),
        at("eviction manager: deleted unused images"),
        at("evicting a pod"),
    );
    assert!(
        at("eviction manager: attempting to reclaim").is_some()
            && containers_at.is_some()
            && containers_at < images_at
            && images_at < evicted_at,
        "dead containers, then images, then a pod:\n{}",
        cluster::tail(&log, 30)
    );
    // The first image reclaim took busybox:once only: busybox:test was still used by keeper.
    let first_images = log[images_at.unwrap_or(0)..]
        .lines()
        .next()
        .unwrap_or_default();
    assert!(
        first_images.contains("busybox:once") && !first_images.contains("busybox:test"),
        "{first_images}"
    );
    drop(cleanup);
    drop(agent);
    drop(server);
    drop(ctrd);
    drop(reg);
}
