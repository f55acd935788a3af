//! Probes end to end: real kubectl → skiff-apiserver (in this process, own data dir and port) → the real
//! `skiff-agent` binary → a private containerd. Pods use the host network and are bound by
//! `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

mod support;

use std::time::Duration;

use support::cluster::{self, Cluster, PodCleanup, Setup};
use support::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_drive_readiness_and_restarts() {
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
        name: "probes",
        tag: "pr",
        busybox_dir: "pr-busybox",
        applets: &["sh", "echo", "sleep", "cat", "true"],
        cluster_cidr: "10.251.0.0/16",
        service_cidr: "10.252.0.0/16",
        agent_args: cluster::no_agent_args,
    });
    let cleanup = PodCleanup(k.clone(), vec!["toggle", "live", "web", "slow", "nostart"]);

    let head = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n"
        )
    };
    // Readiness follows a file; a startup probe gates it.
    let toggle = head("toggle")
        + "    command: [sh, -c, 'echo > /ready; exec sleep 3600']\n\
           \x20   startupProbe: {exec: {command: [cat, /ready]}, periodSeconds: 1}\n\
           \x20   readinessProbe: {exec: {command: [cat, /ready]}, periodSeconds: 1, failureThreshold: 1}\n";
    // Alive for 4 s, then the liveness file goes away.
    let live = head("live")
        + "    command: [sh, -c, 'echo > /alive; sleep 4; busybox rm /alive; exec sleep 3600']\n\
           \x20   livenessProbe: {exec: {command: [cat, /alive]}, periodSeconds: 1, failureThreshold: 2}\n";
    // busybox httpd on a named port (host network: a free port of this machine).
    let http_port = free_port();
    let web = head("web")
        + &format!(
            "    command: [sh, -c, 'busybox mkdir -p /www; echo ok > /www/index.html; exec busybox httpd -f -p {http_port} -h /www']\n\
             \x20   ports: [{{name: http, containerPort: {http_port}}}]\n\
             \x20   readinessProbe: {{httpGet: {{path: /index.html, port: http, httpHeaders: [{{name: X-Test, value: probe}}]}}, periodSeconds: 1}}\n\
             \x20   livenessProbe: {{tcpSocket: {{port: http}}, periodSeconds: 1}}\n"
        );
    // An exec probe that outlives its timeout is a failure and never makes the pod ready.
    let slow = head("slow")
        + "    command: [sleep, '3600']\n\
           \x20   readinessProbe: {exec: {command: [sleep, '5']}, periodSeconds: 1, timeoutSeconds: 1}\n";
    // A startup probe that never passes: the container is killed and restarted, never started or ready.
    let nostart = head("nostart")
        + "    command: [sleep, '3600']\n\
           \x20   startupProbe: {exec: {command: [cat, /never]}, periodSeconds: 1, failureThreshold: 2}\n\
           \x20   readinessProbe: {exec: {command: ['true']}, periodSeconds: 1}\n";
    for (name, manifest) in [
        ("nostart", nostart),
        ("toggle", toggle),
        ("live", live),
        ("web", web),
        ("slow", slow),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, manifest).unwrap_or_else(|e| panic!("{e}"));
        k.ok(&["create", "-f", &path.to_string_lossy()]);
    }

    // Readiness: ready once the probe passes, unready when the file goes, ready again when it is back.
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/toggle",
        "--timeout=120s",
    ]);
    assert_eq!(
        k.jsonpath("toggle", "{.status.containerStatuses[0].started}"),
        "true"
    );
    k.ok(&["exec", "toggle", "--", "busybox", "rm", "/ready"]);
    k.wait_for("toggle becomes unready", Duration::from_secs(20), |k| {
        k.ready("toggle") == "False"
    });
    assert_eq!(
        k.jsonpath(
            "toggle",
            "{.status.conditions[?(@.type==\"ContainersReady\")].status}"
        ),
        "False"
    );
    assert_eq!(
        k.jsonpath("toggle", "{.status.containerStatuses[0].ready}"),
        "false"
    );
    assert_eq!(
        k.jsonpath("toggle", "{.status.containerStatuses[0].restartCount}"),
        "0",
        "readiness never restarts"
    );
    k.ok(&["exec", "toggle", "--", "sh", "-c", "echo > /ready"]);
    k.wait_for("toggle becomes ready again", Duration::from_secs(20), |k| {
        k.ready("toggle") == "True"
    });

    // httpGet on a named port.
    k.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"]);

    // Liveness: the container is killed and restarted, and the events say why.
    k.wait_for("live is restarted once", Duration::from_secs(60), |k| {
        k.jsonpath("live", "{.status.containerStatuses[0].restartCount}") == "1"
    });
    let events = k.ok(&["get", "events", "-o", "json"]);
    let events: serde_json::Value =
        serde_json::from_str(&events).unwrap_or_else(|e| panic!("events: {e}"));
    let of_live: Vec<(String, String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "live")
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        of_live.iter().any(|(t, r, m)| t == "Normal"
            && r == "Killing"
            && m == "Container main failed liveness probe, will be restarted"),
        "Killing event: {of_live:?}"
    );
    assert!(
        of_live.iter().any(|(t, r, m)| t == "Warning"
            && r == "Unhealthy"
            && m.starts_with("Liveness probe failed: ")
            && m.contains("/alive")),
        "Unhealthy event with the probe output: {of_live:?}"
    );
    let last = k.jsonpath(
        "live",
        "{.status.containerStatuses[0].lastState.terminated.exitCode}",
    );
    assert_eq!(
        last, "137",
        "killed after the grace period (sleep ignores SIGTERM as PID 1)"
    );

    // The web pod's tcpSocket liveness probe passes: never restarted.
    assert_eq!(
        k.jsonpath("web", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let slow_events: Vec<String> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "slow" && e["reason"] == "Unhealthy")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        slow_events
            .iter()
            .any(|m| m.starts_with("Readiness probe failed: ") && m.contains("timed out")),
        "timeout event: {slow_events:?}"
    );
    assert_eq!(k.ready("slow"), "False");
    assert_eq!(
        k.jsonpath("slow", "{.status.containerStatuses[0].started}"),
        "true",
        "no startup probe: started as soon as it runs"
    );

    let nostart: Vec<(String, String)> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == "nostart")
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        nostart.iter().any(|(r, m)| r == "Killing"
            && m == "Container main failed startup probe, will be restarted"),
        "startup Killing event: {nostart:?}"
    );
    assert!(
        nostart
            .iter()
            .any(|(r, m)| r == "Unhealthy" && m.starts_with("Startup probe failed: ")),
        "startup Unhealthy event: {nostart:?}"
    );
    assert_eq!(k.ready("nostart"), "False");
    assert_ne!(
        k.jsonpath("nostart", "{.status.containerStatuses[0].started}"),
        "true"
    );

    drop(cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}
