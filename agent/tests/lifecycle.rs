//! Container lifecycle end to end: log rotation and `/var/log/containers` symlinks, postStart and preStop
//! hooks, graceful termination. Real kubectl → skiff-apiserver (in this process) → the real `skiff-agent`
//! binary (small `--container-log-max-size`, temp `--container-log-dir`) → a private containerd. Pods use
//! the host network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{self, Cluster, PodCleanup, Setup, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_hooks_and_graceful_stop() {
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
        name: "lifecycle",
        tag: "lc",
        busybox_dir: "lc-busybox",
        applets: &["sh", "echo", "sleep", "cat", "true", "false"],
        cluster_cidr: "10.253.0.0/16",
        service_cidr: "10.254.0.0/16",
        agent_args: |dir| {
            let mut a: Vec<std::ffi::OsString> = [
                "--container-log-max-size",
                "64Ki",
                "--container-log-max-files",
                "3",
                "--container-log-dir",
            ]
            .map(Into::into)
            .to_vec();
            a.push(dir.join("containers").into());
            a
        },
    });
    let cleanup = PodCleanup(
        k.clone(),
        vec!["chatty", "hooks", "ignore", "badhook", "deadline"],
    );
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap_or_else(|e| panic!("{e}"));

    let head = |name: &str, grace: u32| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
             terminationGracePeriodSeconds: {grace}\n  volumes: [{{name: shared, hostPath: {{path: {}}}}}]\n  \
             containers:\n  - name: main\n    image: busybox:test\n    volumeMounts: [{{name: shared, mountPath: /shared}}]\n",
            shared.display()
        )
    };
    // ~1000 lines a second: a 64 KiB log file fills in about a second.
    let chatty = head("chatty", 1)
        + "    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo line-$i-padding-padding; busybox usleep 1000; done']\n";
    // postStart writes a file the app waits for; preStop writes before the app's SIGTERM trap does. The app
    // waits for the file to be non-empty: `>` creates it before `echo` writes, and `cat` in between reads
    // nothing ("app saw "), which once failed this test under load.
    let hooks = head("hooks", 30)
        + "    command: [sh, -c, 'trap \"echo term >> /shared/order; exit 0\" TERM; \
           until [ -s /shared/post ]; do busybox usleep 100000; done; echo \"app saw $(cat /shared/post)\"; \
           while true; do busybox usleep 200000; done']\n\
           \x20   lifecycle:\n\
           \x20     postStart: {exec: {command: [sh, -c, 'echo poststart > /shared/post']}}\n\
           \x20     preStop: {exec: {command: [sh, -c, 'echo prestop >> /shared/order']}}\n";
    // PID 1 without a handler ignores SIGTERM: killed when the grace period ends.
    // Its preStop sleeps 2 s of the 3 s grace: the signal still gets the kubelet's minimum of 2 s.
    let ignore = head("ignore", 3)
        + "    command: [sleep, '3600']\n\
           \x20   lifecycle: {preStop: {sleep: {seconds: 2}}}\n";
    let badhook = head("badhook", 1)
        + "    command: [sleep, '3600']\n\
           \x20   lifecycle: {postStart: {exec: {command: ['false']}}}\n";
    // activeDeadlineSeconds: the agent fails the pod 4 s after it started, and restarts nothing.
    let deadline = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: deadline}}\nspec:\n  nodeName: {node}\n  \
         hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  activeDeadlineSeconds: 4\n  \
         containers:\n  - name: main\n    image: busybox:test\n    command: [sleep, '3600']\n"
    );
    for (name, manifest) in [
        ("deadline", deadline),
        ("chatty", chatty),
        ("hooks", hooks),
        ("ignore", ignore),
        ("badhook", badhook),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, manifest).unwrap_or_else(|e| panic!("{e}"));
        k.ok(&["create", "-f", &path.to_string_lossy()]);
    }
    for p in ["chatty", "hooks", "ignore"] {
        k.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{p}"),
            "--timeout=120s",
        ]);
    }

    k.wait_for("deadline Failed", Duration::from_secs(60), |k| {
        k.jsonpath("deadline", "{.status.phase}") == "Failed"
    });
    assert_eq!(
        k.jsonpath("deadline", "{.status.reason}"),
        "DeadlineExceeded"
    );
    assert_eq!(
        k.jsonpath("deadline", "{.status.message}"),
        "Pod was active on the node longer than the specified deadline"
    );
    k.wait_for(
        "deadline's container stopped",
        Duration::from_secs(30),
        |k| {
            !k.jsonpath(
                "deadline",
                "{.status.containerStatuses[0].state.terminated.finishedAt}",
            )
            .is_empty()
        },
    );
    let ts = |path: &str| -> jiff::Timestamp {
        let v = k.jsonpath("deadline", path);
        v.parse().unwrap_or_else(|e| panic!("{path} = {v:?}: {e}"))
    };
    let ran = ts("{.status.containerStatuses[0].state.terminated.finishedAt}")
        .duration_since(ts("{.status.startTime}"));
    assert!(
        ran >= jiff::SignedDuration::from_secs(3) && ran < jiff::SignedDuration::from_secs(30),
        "stopped {ran:?} after the pod started (deadline 4 s, whole seconds in the API)"
    );
    assert_eq!(
        k.jsonpath("deadline", "{.status.containerStatuses[0].restartCount}"),
        "0",
        "a failed pod restarts nothing (restartPolicy Always)"
    );
    assert_eq!(
        k.jsonpath(
            "deadline",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    let events = k.ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=deadline,reason=DeadlineExceeded",
        "-o",
        "name",
    ]);
    assert!(!events.trim().is_empty(), "a DeadlineExceeded event");

    // Rotation: `0.log` plus at most two rotated files, all near the size limit; logs still readable.
    let uid = k.jsonpath("chatty", "{.metadata.uid}");
    let log_dir = dir
        .join("pods")
        .join(format!("default_chatty_{uid}"))
        .join("main");
    let rotated = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("0.log."))
        });
        v
    };
    wait_until(
        "chatty's log rotates twice",
        Duration::from_secs(60),
        || rotated(&log_dir).len() >= 2,
    );
    for _ in 0..10 {
        let files = rotated(&log_dir);
        assert!(files.len() <= 2, "at most 3 files in all: {files:?}");
        for f in &files {
            let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            assert!(len <= 64 * 1024, "{} has {len} bytes", f.display());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = k.ok(&["logs", "chatty", "--tail", "3"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("line-") && l.ends_with("-padding-padding")),
        "{out}"
    );
    // The kubelet's symlink names the current file.
    let cid = k.jsonpath("chatty", "{.status.containerStatuses[0].containerID}");
    let cid = cid.rsplit("://").next().unwrap_or_default().to_string();
    let link = dir
        .join("containers")
        .join(format!("chatty_default_main-{cid}.log"));
    assert_eq!(
        std::fs::read_link(&link).ok(),
        Some(log_dir.join("0.log")),
        "symlink {}",
        link.display()
    );
    // Following survives rotations: a streaming read keeps getting new, increasing lines.
    let mut follow = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args(["logs", "-f", "chatty", "--tail", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    std::thread::sleep(Duration::from_secs(4));
    let _ = follow.kill();
    let followed = follow.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let nums: Vec<u64> = String::from_utf8_lossy(&followed.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("line-")?.split('-').next()?.parse().ok())
        .collect();
    assert!(
        nums.len() > 500,
        "followed {} lines across rotations",
        nums.len()
    );
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "no gaps or repeats while following"
    );

    // postStart ran and the app saw its file.
    let mut logs = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logs.contains("app saw poststart") {
        assert!(
            Instant::now() < deadline,
            "the app sees the postStart file within 20 s; its log: {logs:?}; /shared/post: {:?}",
            std::fs::read_to_string(shared.join("post"))
        );
        std::thread::sleep(Duration::from_millis(200));
        logs = String::from_utf8_lossy(&k.run(&["logs", "hooks"], None).stdout).into_owned();
    }

    // A failing postStart hook: warning event, container killed.
    k.wait_for("FailedPostStartHook event", Duration::from_secs(60), |k| {
        let ev = String::from_utf8_lossy(
            &k.run(
                &[
                    "get",
                    "events",
                    "--field-selector",
                    "involvedObject.name=badhook",
                    "-o",
                    "json",
                ],
                None,
            )
            .stdout,
        )
        .into_owned();
        ev.contains("FailedPostStartHook")
    });
    k.wait_for("badhook restarts", Duration::from_secs(60), |k| {
        k.jsonpath("badhook", "{.status.containerStatuses[0].restartCount}") != "0"
    });

    // preStop, then SIGTERM: the trap exits at once, well within the 30 s grace.
    let t0 = Instant::now();
    k.ok(&["delete", "pod", "hooks", "--timeout=60s"]);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "trapping container stopped in {took:?}"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("order")).unwrap_or_default(),
        "prestop\nterm\n"
    );

    // Ignoring SIGTERM: killed at the end of the grace (2 s preStop, then max(3 - 2, 2) = 2 s).
    let t0 = Instant::now();
    k.ok(&["delete", "pod", "ignore", "--timeout=60s"]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(20),
        "ignoring container stopped in {took:?}"
    );

    // Removing a container removes its symlink.
    k.ok(&["delete", "pod", "chatty", "--timeout=60s"]);
    assert!(std::fs::symlink_metadata(&link).is_err(), "symlink removed");
    // And removing the pod removes its log directory (`kubectl delete` returns once the agent is done).
    let pod_logs = log_dir.parent().map(Path::to_path_buf).unwrap_or_default();
    assert!(!pod_logs.exists(), "{} left behind", pod_logs.display());

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}
