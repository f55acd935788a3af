//! `kubectl attach` end to end (real kubectl → skiff-apiserver → the agent's `/attach` → the container's
//! output), and the agent's `/metrics` and `/pods`: refused without the API server's client certificate
//! (401) or with a node's (403), served with it. Pods use the host network and are bound by
//! `spec.nodeName`, so no bridge or CNI state is touched. Needs root.

mod support;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::TempDir;
use support::cluster::{self, Cluster, PodCleanup, Setup, tail};

fn log_dir_args(dir: &TempDir) -> Vec<OsString> {
    vec![
        "--container-log-dir".into(),
        dir.join("containers").into_os_string(),
    ]
}

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

/// Run `c` with `input` on its stdin (closed right after, or only once `c` ended when `hold_stdin`), for at
/// most `timeout`: (exit status, or `None` if it was killed; stdout; stderr).
fn run_bounded(
    mut c: Command,
    input: &[u8],
    hold_stdin: bool,
    timeout: Duration,
) -> (Option<std::process::ExitStatus>, String, String) {
    use std::io::{Read as _, Write as _};
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {c:?}: {e}"));
    let mut w = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
    let _ = w.write_all(input);
    let held = if hold_stdin {
        Some(w)
    } else {
        drop(w);
        None
    };
    let readers = [
        Box::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")))
            as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap_or_else(|| panic!("stderr"))),
    ]
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            _ if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    drop(held);
    let [out, err] = readers.map(|r| r.join().unwrap_or_default());
    (status, out, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_and_the_agent_metrics_and_pods() {
    let Cluster {
        ctrd: _ctrd,
        reg: _reg,
        dir,
        server: _server,
        data_dir,
        node,
        kubelet_port,
        mut agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "attach",
        tag: "at",
        busybox_dir: "at-busybox",
        applets: &["sh", "echo", "sleep", "cat", "stty", "tty", "tr"],
        cluster_cidr: "10.248.0.0/16",
        service_cidr: "10.249.0.0/16",
        agent_args: log_dir_args,
    });
    let _cleanup = PodCleanup(
        k.clone(),
        vec!["looper", "finisher", "reader", "term", "echoer"],
    );
    let looper = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: looper}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'i=0; while true; do echo loop-$i; echo err-$i >&2; i=$((i+1)); sleep 1; done']\n"
    );
    let finisher = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: finisher}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
         image: busybox:test\n    command: [sh, -c, 'sleep 6; echo last-words; sleep 1']\n"
    );
    for (name, body) in [("looper", looper), ("finisher", finisher)] {
        let f = dir.join(format!("{name}.yaml"));
        std::fs::write(&f, body).unwrap_or_else(|e| panic!("{e}"));
        k.ok(&["create", "-f", &f.to_string_lossy()]);
    }
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/looper",
        "pod/finisher",
        "--timeout=120s",
    ]);

    // attach to a finishing container: its output arrives, and attach ends with the container (exit 0).
    let started = Instant::now();
    let out = k.run(&["attach", "finisher"], None);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("last-words"),
        "attach finisher: {:?} {} {}\nagent log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 40)
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // attach to a looping container: new stdout and stderr lines stream in, in order.
    let mut child = k
        .cmd(&["attach", "looper"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl attach: {e}"));
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    for r in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(seen
            .iter()
            .filter(|l: &&String| l.starts_with("loop-"))
            .count()
            >= 3
            && seen.iter().any(|l| l.starts_with("err-")))
    {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
            seen.push(l);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let loops: Vec<u32> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("loop-")?.parse().ok())
        .collect();
    assert!(
        loops.len() >= 3 && loops.windows(2).all(|w| w[1] == w[0] + 1),
        "attach streams consecutive lines: {seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("err-")),
        "stderr too: {seen:?}"
    );
    // Only new output: attach does not replay the log from its start.
    assert!(loops[0] > 0, "attach starts at the end: {seen:?}");

    // kubectl run -i --rm: piped input reaches the container's stdin, the end of it closes stdin
    // (stdinOnce), the container finishes, kubectl deletes the pod.
    let overrides = format!(
        r#"--overrides={{"spec":{{"hostNetwork":true,"nodeName":"{node}","terminationGracePeriodSeconds":1}}}}"#
    );
    let run_args = |name: &'static str, flags: &'static [&'static str], script: &'static str| {
        let mut a: Vec<String> = vec!["run".into(), name.into()];
        a.extend(flags.iter().map(|f| f.to_string()));
        a.extend([
            "--rm".into(),
            "--restart=Never".into(),
            "--image=busybox:test".into(),
            overrides.clone(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script.into(),
        ]);
        a
    };
    let args = run_args("reader", &["-i"], "read l; echo got:$l; cat; echo done");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run_bounded(
        k.cmd(&args),
        b"hello\nmore\n",
        false,
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("got:hello\nmore\ndone\n"),
        "kubectl run -i: {status:?}\n{stdout}\n{stderr}\nagent log:\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30)
    );
    k.wait_for("pod reader deleted", Duration::from_secs(30), |k| {
        !k.run(&["get", "pod", "reader"], None).status.success()
    });

    // kubectl run -it under a terminal (script(1) gives kubectl a pty of 40x100): the container gets a
    // tty of that size and TERM, input goes through it, output comes back on one stream.
    let args = run_args(
        "term",
        &["-it"],
        "read x; sleep 1; stty size; tty; echo term=$TERM x=$x",
    );
    let quoted: Vec<String> = [
        "kubectl".to_string(),
        "--kubeconfig".into(),
        k.kubeconfig.display().to_string(),
        "--cache-dir".into(),
        k.cache.display().to_string(),
    ]
    .into_iter()
    .chain(args)
    .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
    .collect();
    let mut script = Command::new("script");
    script.args([
        "-qec",
        &format!("stty rows 40 cols 100; {}", quoted.join(" ")),
        "/dev/null",
    ]);
    let (status, text, _) = run_bounded(script, b"go\n", true, Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success())
            && text.contains("40 100")
            && text.contains("/dev/pts/")
            && text.contains("term=xterm x=go"),
        "kubectl run -it: {status:?}\n{text:?}\nagent log:\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30)
    );
    k.wait_for("pod term deleted", Duration::from_secs(30), |k| {
        !k.run(&["get", "pod", "term"], None).status.success()
    });

    // stdin survives an agent crash: the shim holds its own end of the FIFO and the new agent reopens
    // the agent's end when it adopts the container.
    let echoer = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: echoer}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    \
         image: busybox:test\n    stdin: true\n    command: [sh, -c, 'read l; echo pong:$l']\n"
    );
    let f = dir.join("echoer.yaml");
    std::fs::write(&f, echoer).unwrap_or_else(|e| panic!("{e}"));
    k.ok(&["create", "-f", &f.to_string_lossy()]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/echoer",
        "--timeout=60s",
    ]);
    // Assigned, not shadowed: the agent must outlive `_cleanup` (declared later) to finish the deletions.
    agent = cluster::restart_agent(agent, true);
    cluster::wait_until(
        "the restarted agent serves",
        Duration::from_secs(30),
        || curl(kubelet_port, "/healthz", None).0 == "200",
    );
    let (status, stdout, stderr) = run_bounded(
        k.cmd(&["attach", "-i", "echoer"]),
        b"ping\n",
        false,
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains("pong:ping"),
        "attach -i after an agent restart: {status:?}\n{stdout}\n{stderr}\nagent log:\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30)
    );

    // kubectl debug: an ephemeral container in looper's PID namespace (--target), attached with stdin; it
    // runs once and is reported in ephemeralContainerStatuses while the pod stays Ready.
    let (status, stdout, stderr) = run_bounded(
        k.cmd(&[
            "debug",
            "-i",
            "looper",
            "--image=busybox:test",
            "--target=main",
            "--container=dbg",
            "--",
            "sh",
            "-c",
            "read x; tr '\\0' ' ' </proc/1/cmdline; echo; echo got:$x",
        ]),
        b"hi\n",
        false,
        Duration::from_secs(60),
    );
    assert!(
        status.is_some_and(|s| s.success())
            && stdout.contains("while true; do echo loop-")
            && stdout.contains("got:hi"),
        "kubectl debug: {status:?}\n{stdout}\n{stderr}\nagent log:\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 30)
    );
    k.wait_for("dbg terminated", Duration::from_secs(30), |k| {
        k.jsonpath(
            "looper",
            "{.status.ephemeralContainerStatuses[0].state.terminated.exitCode}",
        ) == "0"
    });
    assert_eq!(
        k.ready("looper"),
        "True",
        "a finished debugger leaves the pod Ready"
    );
    assert_eq!(
        k.jsonpath(
            "looper",
            "{.status.ephemeralContainerStatuses[0].restartCount}"
        ),
        "0"
    );
    let logs = k.ok(&["logs", "looper", "-c", "dbg"]);
    assert!(logs.contains("got:hi"), "{logs}");

    // exec over SPDY/3.1 (kubectl's fallback; forced here): output, stderr, exit code, stdin.
    let spdy_exec = |args: &[&str], input: Option<&str>| {
        let mut c = k.cmd(&[&["-v=4"], args].concat());
        c.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap_or_else(|e| panic!("kubectl exec: {e}"));
        if let Some(mut w) = child.stdin.take() {
            use std::io::Write as _;
            if let Some(text) = input {
                let _ = w.write_all(text.as_bytes());
            }
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("kubectl exec: {e}"))
    };
    let out = spdy_exec(
        &[
            "exec",
            "looper",
            "--",
            "sh",
            "-c",
            "echo hi; echo err >&2; exit 3",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "spdy exec: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert!(stderr.contains("err"), "{stderr}");
    assert!(
        std::fs::read_to_string(&agent.log)
            .unwrap_or_default()
            .contains("exec over SPDY/3.1"),
        "the agent served the SPDY upgrade"
    );
    let out = spdy_exec(&["exec", "-i", "looper", "--", "cat"], Some("one\ntwo\n"));
    assert!(
        out.status.success(),
        "spdy exec -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\ntwo\n");

    // port-forward to a host-network pod reaches the node's own localhost (here: a listener of this test).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let target_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = listener.accept() {
            use std::io::Write as _;
            let _ = c.write_all(b"host-side\n");
        }
    });
    let local = support::free_port();
    let mut fwd = k
        .cmd(&[
            "port-forward",
            "pod/looper",
            &format!("{local}:{target_port}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl port-forward: {e}"));
    let fwd_out = fwd.stdout.take().unwrap_or_else(|| panic!("stdout"));
    let mut fwd_lines = BufReader::new(fwd_out);
    let mut first = String::new();
    let _ = fwd_lines.read_line(&mut first);
    // Keep reading kubectl's stdout: a closed pipe would kill it at its next line (SIGPIPE).
    std::thread::spawn(move || for _ in fwd_lines.lines() {});
    let mut got = String::new();
    if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", local)) {
        use std::io::Read as _;
        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = c.read_to_string(&mut got);
    }
    let _ = fwd.kill();
    let _ = fwd.wait();
    assert_eq!(
        got,
        "host-side\n",
        "port-forward to a hostNetwork pod ({first:?})\n{}",
        tail(&std::fs::read_to_string(&agent.log).unwrap_or_default(), 15)
    );

    // /metrics and /pods: 401 without a certificate, 403 for a node, 200 for the API server's client.
    let pki =
        skiff_apiserver::pki::Pki::load_or_create(&data_dir).unwrap_or_else(|e| panic!("pki: {e}"));
    let (crt, key) = pki
        .client_cert(
            &format!("system:node:{node}"),
            &["system:nodes".to_string()],
        )
        .unwrap_or_else(|e| panic!("node cert: {e}"));
    let (node_crt, node_key) = (dir.join("node.crt"), dir.join("node.key"));
    std::fs::write(&node_crt, crt).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&node_key, key).unwrap_or_else(|e| panic!("{e}"));
    let pki_dir = data_dir.join("pki");
    let (api_crt, api_key) = (
        pki_dir.join("apiserver-kubelet-client.crt"),
        pki_dir.join("apiserver-kubelet-client.key"),
    );
    for path in ["/metrics", "/pods"] {
        assert_eq!(curl(kubelet_port, path, None).0, "401", "{path}");
        assert_eq!(
            curl(kubelet_port, path, Some((&node_crt, &node_key))).0,
            "403",
            "{path}"
        );
    }
    assert_eq!(curl(kubelet_port, "/healthz", None).0, "200");

    let (code, metrics) = curl(kubelet_port, "/metrics", Some((&api_crt, &api_key)));
    assert_eq!(code, "200", "{metrics}");
    let value = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    };
    let rss = value("process_resident_memory_bytes").unwrap_or(0.0);
    assert!(rss > 1e6, "rss: {metrics}");
    assert!(value("process_cpu_seconds_total").is_some_and(|v| v > 0.0));
    // looper runs (finisher may have ended by now).
    assert!(
        value("kubelet_running_pods").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    assert!(
        value("kubelet_running_containers{container_state=\"running\"}").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    assert!(
        value("skiff_pod_start_duration_seconds_count").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE skiff_pod_start_duration_seconds histogram"));

    let (code, pods) = curl(kubelet_port, "/pods", Some((&api_crt, &api_key)));
    assert_eq!(code, "200", "{pods}");
    let list: serde_json::Value =
        serde_json::from_str(&pods).unwrap_or_else(|e| panic!("/pods is JSON: {e}: {pods}"));
    assert_eq!(list["kind"], "PodList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["metadata"]["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(names.contains(&"looper"), "{names:?}");
    assert!(
        list["items"]
            .as_array()
            .is_some_and(|a| a.iter().all(|p| p["spec"]["nodeName"] == node.as_str())),
        "only this node's pods"
    );
}
