//! `kubectl logs` and `kubectl exec` end to end: real kubectl → skiff-apiserver (in this process, own data
//! dir and port) → the agent's API (the real `skiff-agent` binary, own port) → a private containerd.
//! Pods use the host network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched.
//! Needs root.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::cluster::{self, Cluster, PodCleanup, Setup, tail, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_and_exec_through_the_agent_api() {
    let Cluster {
        ctrd,
        reg,
        dir,
        server,
        admin,
        data_dir,
        node,
        kubelet_port,
        agent,
        k,
    } = cluster::start(Setup {
        name: "logs-exec",
        tag: "lx",
        busybox_dir: "lx-busybox",
        applets: &["sh", "echo", "sleep", "cat", "true", "tty", "stty", "tar"],
        cluster_cidr: "10.251.0.0/16",
        service_cidr: "10.252.0.0/16",
        agent_args: cluster::no_agent_args,
    });
    // Dropped before the agent (also on a failed assertion): the agent tears the pod down.
    let _cleanup = PodCleanup(k.clone(), vec!["talker"]);

    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo hello; echo oops >&2; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done']\n"
    );
    let manifest = dir.join("pod.yaml");
    std::fs::write(&manifest, pod).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &manifest.to_string_lossy()]);
    // A container that exits at once and is restarted (after the 10 s back-off) for `logs --previous`.
    let crasher = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: crasher}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:test\n    \
         command: [sh, -c, 'echo attempt-output; sleep 1; exit 1']\n"
    );
    let crasher_manifest = dir.join("crasher.yaml");
    std::fs::write(&crasher_manifest, crasher).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &crasher_manifest.to_string_lossy()]);
    let _cleanup_crasher = PodCleanup(k.clone(), vec!["crasher"]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/talker",
        "--timeout=120s",
    ]);
    // A running container that has printed nothing: an empty log, not "waiting to start".
    let quiet = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: quiet}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: q\n    image: busybox:test\n    \
         command: [sleep, '3600']\n"
    );
    let quiet_manifest = dir.join("quiet.yaml");
    std::fs::write(&quiet_manifest, quiet).unwrap_or_else(|e| panic!("{e}"));
    let _cleanup_quiet = PodCleanup(k.clone(), vec!["quiet"]);
    k.ok(&["create", "-f", &quiet_manifest.to_string_lossy()]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/quiet",
        "--timeout=120s",
    ]);
    assert_eq!(k.ok(&["logs", "quiet"]), "");
    let node_json = k.ok(&["get", "node", &node, "-o", "json"]);
    assert!(
        node_json.contains(&format!("\"Port\": {kubelet_port}")),
        "the node reports its kubelet port: {node_json}"
    );

    // The agent's API: /healthz open on localhost; anonymous callers and nodes are refused.
    let pki =
        skiff_apiserver::pki::Pki::load_or_create(&data_dir).unwrap_or_else(|e| panic!("pki: {e}"));
    let (crt, key) = pki
        .client_cert(
            &format!("system:node:{node}"),
            &["system:nodes".to_string()],
        )
        .unwrap_or_else(|e| panic!("node cert: {e}"));
    std::fs::write(dir.join("node.crt"), crt).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("node.key"), key).unwrap_or_else(|e| panic!("{e}"));
    let curl = |path: &str, extra: &[&str]| -> String {
        let out = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "10",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(extra)
            .arg(format!("https://127.0.0.1:{kubelet_port}{path}"))
            .output()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("/healthz", &[]), "200");
    assert_eq!(curl("/containerLogs/default/talker/main", &[]), "401");
    let (node_crt, node_key) = (dir.join("node.crt"), dir.join("node.key"));
    let node_cert = [
        "--cert".to_string(),
        node_crt.to_string_lossy().into_owned(),
        "--key".to_string(),
        node_key.to_string_lossy().into_owned(),
    ];
    let node_cert: Vec<&str> = node_cert.iter().map(String::as_str).collect();
    assert_eq!(
        curl("/containerLogs/default/talker/main", &node_cert),
        "403"
    );
    let kc = [
        "--cert",
        "apiserver-kubelet-client.crt",
        "--key",
        "apiserver-kubelet-client.key",
    ]
    .map(|f| {
        if f.starts_with("--") {
            f.to_string()
        } else {
            data_dir.join("pki").join(f).to_string_lossy().into_owned()
        }
    });
    let kc: Vec<&str> = kc.iter().map(String::as_str).collect();
    assert_eq!(curl("/containerLogs/default/talker/main", &kc), "200");
    assert_eq!(curl("/containerLogs/default/nobody/main", &kc), "404");

    // kubectl logs: plain, with --tail, with --timestamps, --previous refused.
    wait_until("three ticks are logged", Duration::from_secs(20), || {
        k.ok(&["logs", "talker"]).contains("tick-2")
    });
    let logs = k.ok(&["logs", "talker"]);
    let head: Vec<&str> = logs.lines().take(3).collect();
    assert!(
        head.contains(&"hello") && head.contains(&"oops"),
        "stdout and stderr lines: {logs:?}"
    );
    let last = k.ok(&["logs", "talker", "--tail=1"]);
    assert!(
        last.starts_with("tick-") && last.lines().count() == 1,
        "tail: {last:?}"
    );
    let stamped = k.ok(&["logs", "talker", "--timestamps", "--limit-bytes=200"]);
    assert!(
        stamped.len() <= 200
            && stamped.lines().any(|l| l.ends_with(" hello"))
            && stamped.lines().take(3).all(|l| l
                .split(' ')
                .next()
                .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())),
        "timestamps: {stamped:?}"
    );
    let limited = k.ok(&["logs", "talker", "--limit-bytes=3"]);
    assert_eq!(limited.len(), 3, "limit-bytes: {limited:?}");
    let prev = k.run(&["logs", "talker", "--previous"], None);
    assert!(!prev.status.success());
    assert!(
        String::from_utf8_lossy(&prev.stderr)
            .contains("previous terminated container \"main\" in pod \"talker\" not found"),
        "previous: {}",
        String::from_utf8_lossy(&prev.stderr)
    );

    // kubectl logs -f: new lines keep arriving.
    let mut follow = k
        .cmd(&["logs", "-f", "talker", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    let out = follow.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while seen.len() < 4 && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            seen.push(l);
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen.len() >= 4, "logs -f streamed only {seen:?}");
    let n = |l: &String| l.strip_prefix("tick-").and_then(|x| x.parse::<u32>().ok());
    let nums: Vec<u32> = seen.iter().filter_map(n).collect();
    assert!(
        nums.len() == seen.len() && nums.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ticks: {seen:?}"
    );

    // Following survives a rotation: the file is renamed away and a new one appears.
    let mut follow = k
        .cmd(&["logs", "-f", "talker", "--tail=0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl logs -f: {e}"));
    let out = follow.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10));
    assert!(first.is_ok(), "logs -f before the rotation: {first:?}");
    let log_dir = std::fs::read_dir(dir.join("pods"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("default_talker_"))
        })
        .unwrap_or_else(|| panic!("no log directory of talker"))
        .join("main");
    std::fs::rename(log_dir.join("0.log"), log_dir.join("0.log.20261127-000000"))
        .unwrap_or_else(|e| panic!("rotate: {e}"));
    std::fs::write(
        log_dir.join("0.log"),
        "2026-11-27T08:00:00.000000001Z stdout F after-rotation\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut rotated = false;
    while !rotated && Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(500)) {
            rotated = l == "after-rotation";
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(rotated, "logs -f did not follow the rotated file");

    // kubectl exec -it under a pseudo-terminal.
    let inner = format!(
        "kubectl --kubeconfig {} --cache-dir {} exec -it talker -- sh -c 'tty; stty size; exit 4'",
        admin.display(),
        dir.join("kube-cache").display()
    );
    let tty = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("script: {e}"));
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("/dev/pts/"), "exec -it: {shown:?}");
    assert_eq!(tty.status.code(), Some(4), "exec -it exit code: {shown:?}");

    // kubectl exec: output and exit code.
    let out = k.run(
        &["exec", "talker", "--", "sh", "-c", "echo hi; exit 3"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "exec exit code; stderr: {}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = k.run(
        &[
            "exec",
            "talker",
            "--",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2",
        ],
        None,
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-err"));

    // kubectl exec -i: stdin reaches the process and its end closes it.
    let out = k.run(
        &["exec", "-i", "talker", "--", "cat"],
        Some("from stdin\nsecond line\n"),
    );
    assert!(
        out.status.success(),
        "exec -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from stdin\nsecond line\n"
    );

    // The agent directly, as the API server calls it, with the older v4 subprotocol: a terminal, a
    // resize before the input, stdin, and the final Status on channel 3.
    let frames = direct_exec_v4(&data_dir, kubelet_port).await;
    let text: String = frames
        .iter()
        .filter(|(ch, _)| *ch == 1)
        .map(|(_, d)| String::from_utf8_lossy(d).into_owned())
        .collect();
    assert!(
        text.contains("30 100"),
        "stty size after the resize: {text:?}"
    );
    assert!(text.contains("got-abc"), "stdin: {text:?}");
    let status = frames
        .iter()
        .find(|(ch, _)| *ch == 3)
        .map(|(_, d)| d.clone());
    let status: serde_json::Value = serde_json::from_slice(&status.unwrap_or_default())
        .unwrap_or_else(|e| panic!("status JSON: {e}"));
    assert_eq!(
        status,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );

    // Errors: an unknown container, a command that does not exist.
    let bad = k.run(&["exec", "talker", "-c", "nope", "--", "true"], None);
    assert!(!bad.status.success());
    let missing = k.run(&["exec", "talker", "--", "no-such-command"], None);
    assert!(!missing.status.success());

    // kubectl cp: tar through exec with stdin, both ways.
    let to_pod = dir.join("to-pod.txt");
    std::fs::write(&to_pod, "copied in\n").unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["cp", &to_pod.to_string_lossy(), "talker:/in.txt"]);
    assert_eq!(
        k.ok(&["exec", "talker", "--", "cat", "/in.txt"]),
        "copied in\n"
    );
    let from_pod = dir.join("from-pod.txt");
    k.ok(&["cp", "talker:/in.txt", &from_pod.to_string_lossy()]);
    assert_eq!(
        std::fs::read_to_string(&from_pod).unwrap_or_else(|e| panic!("{e}")),
        "copied in\n"
    );

    // logs --previous: the restarted container's last attempt.
    wait_until("crasher restarts", Duration::from_secs(60), || {
        k.run(
            &[
                "get",
                "pod",
                "crasher",
                "-o",
                "jsonpath={.status.containerStatuses[0].restartCount}",
            ],
            None,
        )
        .stdout
        .first()
        .is_some_and(|c| *c != b'0')
    });
    let prev = k.ok(&["logs", "crasher", "--previous"]);
    assert_eq!(prev, "attempt-output\n");

    // Clean up: the agent tears the pod down, then everything stops.
    k.ok(&[
        "delete",
        "pod",
        "talker",
        "--grace-period=1",
        "--timeout=60s",
    ]);
    drop(_cleanup_quiet);
    drop(_cleanup_crasher);
    drop(_cleanup);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}

/// Exec `read x; stty size; echo got-$x` with a tty over `v4.channel.k8s.io`, straight to the agent with
/// the API server's kubelet client certificate. Returns the frames received as (channel, data).
async fn direct_exec_v4(data_dir: &Path, port: u16) -> Vec<(u8, Vec<u8>)> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let pki = data_dir.join("pki");
    let read =
        |f: &str| std::fs::read_to_string(pki.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let client = skiff_apiserver::proxy::KubeletClient::new(
        &read("apiserver-kubelet-client.crt"),
        &read("apiserver-kubelet-client.key"),
    )
    .unwrap_or_else(|e| panic!("client: {e}"));
    let uri = "/exec/default/talker/main?command=sh&command=-c&command=read+x%3B+stty+size%3B+echo+got-%24x&stdin=true&stdout=true&tty=true";
    let req = http::Request::get(uri)
        .header("host", format!("127.0.0.1:{port}"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-protocol", "v4.channel.k8s.io")
        .body(axum::body::Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"));
    let resp = client
        .send(
            "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            port,
            req,
        )
        .await
        .unwrap_or_else(|e| panic!("send: {}", e.message));
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("v4.channel.k8s.io")
    );
    let upgraded = hyper::upgrade::on(resp)
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        hyper_util::rt::TokioIo::new(upgraded),
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    let mut resize = vec![4u8];
    resize.extend_from_slice(br#"{"Width":100,"Height":30}"#);
    let mut input = vec![0u8];
    input.extend_from_slice(b"abc\n");
    for m in [resize, input] {
        ws.send(Message::Binary(m.into()))
            .await
            .unwrap_or_else(|e| panic!("ws send: {e}"));
    }
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => {
                if let Some((ch, d)) = b.split_first() {
                    frames.push((*ch, d.to_vec()));
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => break,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("ws: {e}; frames so far {frames:?}"),
            Err(_) => panic!("no close within 15 s; frames {frames:?}"),
        }
    }
    frames
}
