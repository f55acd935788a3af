//! `metrics.k8s.io` end to end: a fake agent serves the kubelet's `/metrics/resource` over HTTPS on
//! 127.0.0.1, a Ready Node points at it, the API server scrapes it and `kubectl top` shows the usage. And
//! the API server's own `/metrics`.

mod common;
mod support_authz;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::{Server, path_str};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// (namespace, pod, container, cores, memory bytes) the fake agent reports.
const CONTAINERS: &[(&str, &str, &str, f64, u64)] = &[
    ("default", "web", "a", 0.5, 64 << 20),
    ("default", "web", "b", 0.25, 32 << 20),
    ("default", "db", "c", 0.1, 16 << 20),
    ("kube-system", "dns", "d", 0.05, 8 << 20),
];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The kubelet's answer at `ts` for containers started at `start` (both ms): counters growing at the rates
/// of `CONTAINERS`, the node at one core with 1 GiB in use.
fn resource_metrics(start: u64, ts: u64) -> String {
    let secs = (ts - start) as f64 / 1000.0;
    let mut out = String::from(
        "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n\
         # TYPE container_cpu_usage_seconds_total counter\n",
    );
    for (ns, pod, c, cores, _) in CONTAINERS {
        out += &format!(
            "container_cpu_usage_seconds_total{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {:.9} {ts}\n",
            cores * secs
        );
    }
    out += "# TYPE container_memory_working_set_bytes gauge\n";
    for (ns, pod, c, _, mem) in CONTAINERS {
        out += &format!(
            "container_memory_working_set_bytes{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {mem} {ts}\n"
        );
    }
    out += "# TYPE container_start_time_seconds gauge\n";
    for (ns, pod, c, _, _) in CONTAINERS {
        out += &format!(
            "container_start_time_seconds{{container=\"{c}\",namespace=\"{ns}\",pod=\"{pod}\"}} {:.3} {start}\n",
            start as f64 / 1000.0
        );
    }
    out += &format!(
        "# TYPE node_cpu_usage_seconds_total counter\nnode_cpu_usage_seconds_total {:.9} {ts}\n\
         # TYPE node_memory_working_set_bytes gauge\nnode_memory_working_set_bytes 1073741824 {ts}\n\
         # TYPE resource_scrape_error gauge\nresource_scrape_error 0\n",
        1000.0 + secs
    );
    out
}

/// An HTTPS server on 127.0.0.1 answering `GET /metrics/resource`; returns its port. The containers
/// "started" 10.5 s before the first scrape, so (as metrics-server) their first scrape already has a rate.
fn fake_agent() -> u16 {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    let cert = CertificateDer::from_pem_slice(ck.cert.pem().as_bytes()).expect("cert pem");
    let key =
        PrivateKeyDer::from_pem_slice(ck.signing_key.serialize_pem().as_bytes()).expect("key");
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("server config");
    let cfg = Arc::new(cfg);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let start: Arc<Mutex<Option<u64>>> = Arc::default();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let Ok(conn) = rustls::ServerConnection::new(cfg.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let ts = now_ms();
            let start = *start
                .lock()
                .expect("lock")
                .get_or_insert(ts.saturating_sub(10_500));
            let (status, body) = if req.starts_with(b"GET /metrics/resource ") {
                ("200 OK", resource_metrics(start, ts))
            } else {
                ("404 Not Found", "404 page not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes());
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    port
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - {name: a, image: busybox}
  - {name: b, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: db, labels: {app: db}}
spec:
  containers:
  - {name: c, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: dns, namespace: kube-system, labels: {app: dns}}
spec:
  containers:
  - {name: d, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: idle}
spec:
  containers:
  - {name: e, image: busybox}
";

fn register_node(s: &Server, port: u16) {
    let node = s.write(
        "node.yaml",
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {role: worker}}\n",
    );
    s.ok(&["create", "-f", path_str(&node)]);
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .expect("now")
        .to_string();
    let status = serde_json::json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": {"cpu": "2", "memory": "2Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": now, "lastTransitionTime": now}],
    }});
    s.ok(&[
        "patch",
        "node",
        "n1",
        "--subresource=status",
        "--type=merge",
        "-p",
        &status.to_string(),
    ]);
}

/// Retry `kubectl args` until it succeeds (the scrapes are `--metric-resolution` apart).
fn eventually(s: &Server, args: &[&str], within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let out = s.kubectl(args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?}: {}\nserver log tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            common::tail(&s.log(), 40)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A row of `kubectl top` against the expected one; CPU cells (`750m`) within 1m, as the counters are read
/// through floats (start times in seconds).
fn row_is(row: &[String], want: &[&str]) -> bool {
    let milli = |c: &str| c.strip_suffix('m').and_then(|n| n.parse::<i64>().ok());
    row.len() == want.len()
        && row
            .iter()
            .zip(want)
            .all(|(have, want)| match (milli(have), milli(want)) {
                (Some(a), Some(b)) => (a - b).abs() <= 1,
                _ => have == want,
            })
}

fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn kubectl_top_reads_the_scraped_usage() {
    if !common::have("kubectl") {
        return;
    }
    // The smallest resolution metrics-server's rules allow (nine tenths ≥ the 10 s timeout).
    let s = Server::start_with(&["--metric-resolution", "11200ms"]);
    let refused = common::refused(&["--metric-resolution", "5s"]);
    assert!(
        refused.contains("metric-resolution should be a time duration at least 10s"),
        "{refused}"
    );
    // kubectl top finds the group through discovery.
    let groups = s.ok(&["api-versions"]);
    assert!(groups.contains("metrics.k8s.io/v1beta1"), "{groups}");
    let resources = s.ok(&["api-resources", "--api-group=metrics.k8s.io"]);
    assert!(
        resources.contains("PodMetrics") && resources.contains("NodeMetrics"),
        "{resources}"
    );

    let port = fake_agent();
    register_node(&s, port);
    let pods = s.write("pods.yaml", PODS);
    s.ok(&["create", "-f", path_str(&pods)]);

    // Pods: the containers started 10.5 s before the first scrape, so one scrape gives a rate.
    let top = eventually(&s, &["top", "pod", "web"], Duration::from_secs(40));
    assert!(row_is(&rows(&top)[1], &["web", "750m", "96Mi"]), "{top}");
    // The node needs two scrapes.
    let top = eventually(&s, &["top", "node"], Duration::from_secs(40));
    let r = rows(&top);
    assert_eq!(
        r[0],
        ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        "{top}"
    );
    assert!(
        row_is(&r[1], &["n1", "1000m", "50%", "1024Mi", "50%"]),
        "{top}"
    );
    let top = s.ok(&["top", "node", "-l", "role=worker", "--no-headers"]);
    assert_eq!(rows(&top).len(), 1, "{top}");
    // No node matches: an empty list, which kubectl reports so.
    let err = s.fails(&["top", "node", "-l", "role=none"], None);
    assert!(err.contains("metrics not available yet"), "{err}");

    let top = s.ok(&["top", "pod", "--sort-by=cpu"]);
    let names: Vec<String> = rows(&top).iter().skip(1).map(|r| r[0].clone()).collect();
    assert_eq!(names, ["web", "db"], "{top}");
    let top = s.ok(&["top", "pod", "-A"]);
    let r = rows(&top);
    assert_eq!(
        r[0],
        ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{top}"
    );
    assert!(
        r.contains(&vec![
            "kube-system".into(),
            "dns".into(),
            "50m".into(),
            "8Mi".into()
        ]),
        "{top}"
    );
    let top = s.ok(&["top", "pod", "-l", "app=web", "--containers"]);
    let r = rows(&top);
    assert!(row_is(&r[1], &["web", "a", "500m", "64Mi"]), "{top}");
    assert!(row_is(&r[2], &["web", "b", "250m", "32Mi"]), "{top}");
    assert_eq!(r.len(), 3, "{top}");

    // The raw API, as metrics-server answers.
    let raw = s.ok(&["get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"]);
    let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v["kind"], "NodeMetricsList");
    assert_eq!(v["apiVersion"], "metrics.k8s.io/v1beta1");
    let n = &v["items"][0];
    assert_eq!(n["metadata"]["name"], "n1");
    assert_eq!(n["metadata"]["labels"]["role"], "worker");
    assert_eq!(n["usage"]["memory"], "1Gi");
    let window = n["window"].as_str().unwrap_or("");
    assert!(
        window.starts_with("11.") && window.ends_with('s'),
        "{window}"
    );
    let raw = s.ok(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?fieldSelector=metadata.name%3Ddb",
    ]);
    let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{raw}");
    assert_eq!(v["items"][0]["containers"][0]["usage"]["memory"], "16Mi");

    // No usage for a pod, no pod at all.
    let err = s.fails(&["top", "pod", "idle"], None);
    assert!(
        err.contains(r#"podmetrics.metrics.k8s.io "default/idle" not found"#),
        "{err}"
    );
    let err = s.fails(
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
        ],
        None,
    );
    assert!(err.contains(r#"pods "nope" not found"#), "{err}");
    let roles = s.ok(&[
        "get",
        "clusterrole",
        "system:aggregated-metrics-reader",
        "-o",
        "json",
    ]);
    assert!(roles.contains("\"metrics.k8s.io\""), "{roles}");
}

/// The value of the sample of `name` whose labels include every one of `labels` (`key="value"`).
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?.strip_prefix('{')?;
        let have: Vec<&str> = rest.strip_suffix('}')?.split(',').collect();
        labels
            .iter()
            .all(|want| have.contains(want))
            .then(|| value.parse().ok())?
    })
}

/// The API server's own `/metrics`, as kube-apiserver's: `kubectl get --raw /metrics` counts the requests
/// made before it with kube's labels, follows an open watch until it ends, and is only for those who may
/// `get` the URL (kube's `system:monitoring` group).
#[test]
fn the_api_server_counts_its_requests() {
    if !support_authz::kubectl_present() {
        return;
    }
    let s = Server::start();
    s.ok(&["create", "configmap", "counted", "--from-literal=a=b"]);
    s.ok(&["get", "configmap", "counted"]);
    s.ok(&["get", "configmaps"]);
    let missing = s.kubectl(&["get", "configmap", "missing"]);
    assert!(!missing.status.success());
    let text = s.ok(&["get", "--raw", "/metrics"]);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit_once(' ').map(|(_, v)| v.parse::<f64>());
        assert!(matches!(value, Some(Ok(_))), "not a sample: {line:?}");
    }
    let cm = [r#"resource="configmaps""#, r#"version="v1""#, r#"group="""#];
    let total = |code: &str, verb: &str, scope: &str| {
        let mut labels = cm.to_vec();
        let (code, verb, scope) = (
            format!("code=\"{code}\""),
            format!("verb=\"{verb}\""),
            format!("scope=\"{scope}\""),
        );
        labels.extend([code.as_str(), verb.as_str(), scope.as_str()]);
        sample(&text, "apiserver_request_total", &labels)
    };
    assert_eq!(total("201", "POST", "resource"), Some(1.0), "{text}");
    assert_eq!(total("200", "GET", "resource"), Some(1.0));
    assert_eq!(total("404", "GET", "resource"), Some(1.0));
    assert!(total("200", "LIST", "namespace").is_some_and(|n| n >= 1.0));
    let mut get = cm.to_vec();
    get.extend([r#"verb="GET""#, r#"scope="resource""#, r#"le="+Inf""#]);
    assert_eq!(
        sample(&text, "apiserver_request_duration_seconds_bucket", &get),
        Some(2.0)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("process_resident_memory_bytes ")),
        "{text}"
    );

    // An open watch is counted until the client goes away.
    let mut watch = std::process::Command::new("kubectl")
        .args([
            "--kubeconfig",
            path_str(&s.kubeconfig),
            "get",
            "configmaps",
            "-w",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let mut watching = cm.to_vec();
    watching.push(r#"verb="WATCH""#);
    let open = |want: f64| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = s.ok(&["get", "--raw", "/metrics"]);
            let n = sample(&text, "apiserver_longrunning_requests", &watching).unwrap_or(0.0);
            if n == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "open watches {n}, not {want}: {text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    open(1.0);
    let _ = watch.kill();
    let _ = watch.wait();
    open(0.0);

    let user = support_authz::mint(&s, "curious", &[]);
    let refused = support_authz::kubectl_as(&s, &user, &["get", "--raw", "/metrics"]);
    assert!(!refused.status.success());
    let err = support_authz::stderr(&refused);
    assert!(
        err.contains(r#"User "curious" cannot get path "/metrics""#),
        "{err}"
    );
    let scraper = support_authz::mint(&s, "scraper", &["system:monitoring"]);
    let allowed = support_authz::kubectl_as(&s, &scraper, &["get", "--raw", "/metrics"]);
    assert!(
        support_authz::stdout(&allowed).contains("apiserver_request_total{"),
        "{}",
        support_authz::stderr(&allowed)
    );
}
