//! The agent's `/metrics/resource` against real containerd and cgroups: a busybox pod spinning a busy loop
//! shows its container's CPU time growing between two scrapes, a non-zero working set, its pod's figures
//! and its start time; the node's CPU and memory are there; only the API server's kubelet client may read
//! it. The pod uses the host network and is bound by `spec.nodeName`. Needs root.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::cluster::{self, Cluster, PodCleanup, Setup, tail};

/// `curl` against the agent's API: (HTTP status, body).
fn curl(port: u16, path: &str, cert: Option<(&Path, &Path)>) -> (String, String) {
    let mut c = Command::new("curl");
    c.args(["-sk", "--max-time", "10", "-w", "\n%{http_code}"]);
    if let Some((crt, key)) = cert {
        c.arg("--cert").arg(crt).arg("--key").arg(key);
    }
    let out = c
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .unwrap_or_else(|e| panic!("curl: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

/// (value, timestamp in ms) of the sample `series` (name with its labels exactly as written).
fn sample(text: &str, series: &str) -> Option<(f64, Option<i64>)> {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?;
    let mut parts = line[series.len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    Some((value, parts.next().and_then(|t| t.parse().ok())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_metrics_of_a_busy_pod() {
    let Cluster {
        ctrd: _ctrd,
        reg: _reg,
        dir,
        server: _server,
        data_dir,
        node,
        kubelet_port,
        agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "resmetrics",
        tag: "rm",
        busybox_dir: "rm-busybox",
        applets: &["sh"],
        cluster_cidr: "10.232.0.0/16",
        service_cidr: "10.233.0.0/16",
        agent_args: cluster::no_agent_args,
    });
    let _cleanup = PodCleanup(k.clone(), vec!["spinner"]);
    // A fifth of a core, so the loop does not starve the machine's other tests.
    let spinner = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: spinner}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: spin\n    image: busybox:test\n    \
         command: [sh, -c, 'while :; do :; done']\n    resources: {{limits: {{cpu: 200m, memory: 64Mi}}}}\n"
    );
    let f = dir.join("spinner.yaml");
    std::fs::write(&f, spinner).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &f.to_string_lossy()]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/spinner",
        "--timeout=120s",
    ]);

    let pki_dir = data_dir.join("pki");
    let (crt, key) = (
        pki_dir.join("apiserver-kubelet-client.crt"),
        pki_dir.join("apiserver-kubelet-client.key"),
    );
    assert_eq!(curl(kubelet_port, "/metrics/resource", None).0, "401");
    let scrape = || {
        let (code, text) = curl(kubelet_port, "/metrics/resource", Some((&crt, &key)));
        assert_eq!(
            code,
            "200",
            "{text}\nagent log:\n{}",
            tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30)
        );
        text
    };
    let container = r#"{container="spin",namespace="default",pod="spinner"}"#;
    let pod = r#"{namespace="default",pod="spinner"}"#;
    let cpu = format!("container_cpu_usage_seconds_total{container}");

    let first = scrape();
    std::thread::sleep(Duration::from_secs(3));
    let second = scrape();
    let (Some((cpu1, Some(t1))), Some((cpu2, Some(t2)))) =
        (sample(&first, &cpu), sample(&second, &cpu))
    else {
        panic!("no stamped {cpu} in\n{first}\n---\n{second}");
    };
    // 3 s at up to 0.2 cores: clearly more than nothing, at most what the quota allows (plus slack).
    assert!(
        cpu2 - cpu1 > 0.1 && cpu2 - cpu1 < 1.5,
        "CPU {cpu1} → {cpu2}\n{second}"
    );
    assert!(t2 - t1 >= 2_900, "timestamps {t1} → {t2}");
    let now_ms = jiff::Timestamp::now().as_millisecond();
    assert!((now_ms - t2).abs() < 60_000, "timestamp {t2} is now's");

    let ws = sample(
        &second,
        &format!("container_memory_working_set_bytes{container}"),
    );
    assert!(ws.is_some_and(|(v, t)| v > 0.0 && t.is_some()), "{second}");
    let started = sample(&second, &format!("container_start_time_seconds{container}"));
    assert!(
        started.is_some_and(|(v, t)| (now_ms as f64 / 1000.0 - v).abs() < 600.0 && t.is_none()),
        "{second}"
    );
    let pod_cpu = sample(&second, &format!("pod_cpu_usage_seconds_total{pod}"));
    assert!(pod_cpu.is_some_and(|(v, _)| v >= cpu1), "{second}");
    let pod_ws = sample(&second, &format!("pod_memory_working_set_bytes{pod}"));
    assert!(pod_ws.is_some_and(|(v, _)| v > 0.0), "{second}");

    for name in [
        "node_cpu_usage_seconds_total",
        "node_memory_working_set_bytes",
    ] {
        assert!(
            sample(&second, name).is_some_and(|(v, t)| v > 0.0 && t.is_some()),
            "{name} in\n{second}"
        );
    }
    assert!(second.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    assert!(second.contains("# TYPE node_memory_working_set_bytes gauge\n"));
    assert_eq!(
        sample(&second, "scrape_error"),
        Some((0.0, None)),
        "{second}"
    );
    assert_eq!(sample(&second, "resource_scrape_error"), Some((0.0, None)));
    // `/metrics` is unchanged beside it.
    let (code, metrics) = curl(kubelet_port, "/metrics", Some((&crt, &key)));
    assert!(
        code == "200" && metrics.contains("kubelet_running_pods"),
        "{metrics}"
    );

    // Once the pod is gone, so are its series.
    k.ok(&[
        "delete",
        "pod",
        "spinner",
        "--grace-period=1",
        "--timeout=60s",
    ]);
    cluster::wait_until("the spinner's series go", Duration::from_secs(30), || {
        !scrape().contains("pod=\"spinner\"")
    });
}
