//! Joining with a token, end to end over real TLS: skiff-apiserver in this process, a token from
//! `token create`'s code path, and the agent's bootstrap module (and the real `skiff-agent` binary with
//! `--server --token`). A wrong CA hash, an unknown, expired or revoked token are refused with clear
//! messages; the node certificate obtained is held to the Node authorizer from its first request;
//! renewal replaces it with a new one.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use skiff_agent::bootstrap;
use skiff_apiserver::token_cmd::{self, AdminClient};
use support::cluster::wait_until;
use support::{TempDir, free_port};

struct Server {
    url: String,
    admin: AdminClient,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn start_server(dir: &TempDir) -> Server {
    let port = free_port();
    let data_dir = dir.join("apiserver");
    let ip = |s: &str| s.parse().unwrap_or_else(|e| panic!("{e}"));
    let cfg = skiff_apiserver::ServeConfig {
        data_dir: data_dir.clone(),
        bind_address: ip("127.0.0.1"),
        secure_port: port,
        advertise_address: ip("127.0.0.1"),
        cluster_cidr: "10.233.0.0/16".parse().unwrap_or_else(|e| panic!("{e}")),
        node_cidr_mask: 24,
        service_cidr: "10.97.0.0/16".parse().unwrap_or_else(|e| panic!("{e}")),
        // The agents of these tests serve no cluster DNS.
        cluster_dns: None,
        token_auth_file: None,
    };
    let task = tokio::spawn(skiff_apiserver::run(cfg));
    let admin = data_dir.join("admin.kubeconfig");
    wait_until("the API server listens", Duration::from_secs(30), || {
        admin.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Server {
        url: format!("https://127.0.0.1:{port}"),
        admin: AdminClient::from_kubeconfig(&admin).unwrap_or_else(|e| panic!("{e:#}")),
        task,
    }
}

async fn client(kc: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kc).unwrap_or_else(|e| panic!("{e}"));
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    kube::Client::try_from(cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn code<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

async fn join_err(s: &Server, token: &str, out: &Path) -> String {
    let e = bootstrap::join(&s.url, token, "never", out)
        .await
        .expect_err("the join must be refused");
    assert!(!out.exists(), "a refused join wrote {}", out.display());
    e.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn join_pins_the_ca_and_obtains_a_node_certificate() {
    let dir = TempDir::new("join");
    let s = start_server(&dir);
    let token = token_cmd::create(&s.admin, Duration::from_secs(3600), "agent join test")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_string();
    let real_hash = token[3..67].to_string();
    let creds = token[69..].to_string();
    let nope = dir.join("nope.kubeconfig");

    // A token pinning another CA: refused before any credential is sent.
    let wrong = format!("K10{}::{creds}", "0".repeat(64));
    let e = join_err(&s, &wrong, &nope).await;
    assert_eq!(
        e,
        format!(
            "CA hash mismatch: expected {}, server presented {real_hash}",
            "0".repeat(64)
        )
    );
    let e = bootstrap::check_join(&s.url, &wrong)
        .await
        .expect_err("wrong CA");
    assert!(e.to_string().starts_with("CA hash mismatch"), "{e}");
    bootstrap::check_join(&s.url, &token)
        .await
        .unwrap_or_else(|e| panic!("check_join: {e}"));
    // Not a join token at all.
    let e = join_err(&s, &creds, &nope).await;
    assert!(e.contains("invalid join token"), "{e}");
    // An unknown token.
    let e = join_err(
        &s,
        &format!("K10{real_hash}::zzzzzz.0123456789abcdef"),
        &nope,
    )
    .await;
    assert!(
        e.contains("401") && e.contains("\"zzzzzz\" is unknown or has been deleted"),
        "{e}"
    );
    // An expired token.
    let short = token_cmd::create(&s.admin, Duration::from_secs(1), "")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = join_err(&s, &short, &nope).await;
    assert!(e.contains("401") && e.contains("expired at"), "{e}");

    // The join.
    let node = format!("join-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let kc = dir.join("agent/kubeconfig");
    bootstrap::join(&s.url, &token, &node, &kc)
        .await
        .unwrap_or_else(|e| panic!("join: {e}"));
    let mode = std::fs::metadata(&kc)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (_, _, cert1, _) = bootstrap::read_kubeconfig(&kc).unwrap_or_else(|e| panic!("{e}"));

    // Node authorization from the first request on.
    let c = client(&kc).await;
    let nodes: Api<Node> = Api::all(c.clone());
    let me: Node = serde_json::from_value(json!({"metadata": {"name": node}}))
        .unwrap_or_else(|e| panic!("{e}"));
    nodes
        .create(&PostParams::default(), &me)
        .await
        .unwrap_or_else(|e| panic!("create own node: {e}"));
    let other: Node = serde_json::from_value(json!({"metadata": {"name": "someone-else"}}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code(nodes.create(&PostParams::default(), &other).await),
        403
    );
    let label = Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}));
    assert_eq!(
        code(nodes.patch(&node, &PatchParams::default(), &label).await),
        200
    );
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "kube-system");
    assert_eq!(code(secrets.list(&ListParams::default()).await), 403);
    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": node}}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code(leases.create(&PostParams::default(), &lease).await),
        200
    );

    // Renewal: a new certificate from a CSR made with the current one, swapped into the running
    // agent's client (the agent's own client type).
    let (agent_client, swap) = skiff_agent::kube_tls::client(&kc)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let swap = swap.unwrap_or_else(|| panic!("a certificate kubeconfig gives a swappable client"));
    assert_eq!(
        code(Api::<Node>::all(agent_client.clone()).get(&node).await),
        200
    );
    let presented = || {
        use rustls::client::ResolvesClientCert;
        swap.resolve(&[], &[])
            .map(|ck| ck.cert[0].as_ref().to_vec())
            .unwrap_or_default()
    };
    let der1 = presented();
    bootstrap::renew(&kc, &node)
        .await
        .unwrap_or_else(|e| panic!("renew: {e}"));
    let (_, _, cert2, _) = bootstrap::read_kubeconfig(&kc).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(cert1, cert2);
    swap.reload(&kc).unwrap_or_else(|e| panic!("{e:#}"));
    assert_ne!(
        der1,
        presented(),
        "new connections present the renewed certificate"
    );
    assert_eq!(code(Api::<Node>::all(agent_client).get(&node).await), 200);
    let (nb, na) = bootstrap::validity(&cert2).unwrap_or_else(|e| panic!("{e}"));
    assert!(na - nb > 300 * 24 * 3600, "a year's validity: {nb}..{na}");
    let c2 = client(&kc).await;
    assert_eq!(code(Api::<Node>::all(c2).get(&node).await), 200);

    // Revocation: the deleted token no longer joins anyone.
    token_cmd::delete(&s.admin, &token)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let e = join_err(&s, &token, &nope).await;
    assert!(e.contains("unknown or has been deleted"), "{e}");
}

/// The real binary: `--server --token` with no kubeconfig joins first (here it then stops, as there is
/// no containerd to talk to).
#[tokio::test(flavor = "multi_thread")]
async fn agent_binary_joins_with_server_and_token_flags() {
    let dir = TempDir::new("join-bin");
    let s = start_server(&dir);
    let token = token_cmd::create(&s.admin, Duration::from_secs(600), "")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_string();
    let kc = dir.join("agent/kubeconfig");
    let node = format!(
        "joinbin-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    // `--check-join` (what systemd/install.sh runs first): refuses a wrong CA hash, accepts the token.
    let check = |tok: &str| {
        Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
            .args(["--check-join", "--server", &s.url, "--token", tok])
            .args(["--node-name", &node, "--registry-config", "/nonexistent"])
            .arg("--kubeconfig")
            .arg(&kc)
            .output()
            .unwrap_or_else(|e| panic!("skiff-agent: {e}"))
    };
    let wrong = format!("K10{}{}", "f".repeat(64), &token[67..]);
    let out = check(&wrong);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CA hash mismatch: expected ffff"), "{err}");
    let out = check(&token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!kc.exists(), "--check-join must not join");
    // Without containerd the agent joins, then waits for containerd: the join is what is checked.
    let log_path = dir.join("agent.log");
    let log_file = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("agent log: {e}"));
    let mut agent = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["--node-name", &node, "--server", &s.url])
        .env("SKIFF_TOKEN", &token)
        .arg("--containerd-socket")
        .arg(dir.join("no-containerd.sock"))
        .arg("--root-dir")
        .arg(dir.join("root"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--storage-dir")
        .arg(dir.join("storage"))
        .arg("--registry-config")
        .arg(dir.join("registries.yaml"))
        .args(["--kubelet-port", "0"])
        .args([
            "--proxy-mode",
            "none",
            "--cluster-dns",
            "none",
            "--network-policy",
            "false",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("skiff-agent: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline
        && !std::fs::read_to_string(&log_path).is_ok_and(|l| l.contains("joined the cluster"))
        && agent.try_wait().ok().flatten().is_none()
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(kc.exists(), "no kubeconfig after the join:\n{log}");
    assert!(log.contains("joined the cluster"), "{log}");
    assert!(!log.contains(&token), "the token leaked into the log");
    let (_, _, crt, _) = bootstrap::read_kubeconfig(&kc).unwrap_or_else(|e| panic!("{e}"));
    assert!(crt.contains("BEGIN CERTIFICATE"));
}

/// The whole path with a real containerd: the agent binary joins with `--server --token`, registers its
/// Node and reports it Ready; the Node is the one named in its certificate.
#[tokio::test(flavor = "multi_thread")]
async fn agent_joined_with_a_token_registers_a_ready_node() {
    let ctrd = support::TestContainerd::start();
    let dir = TempDir::new("join-ready");
    let s = start_server(&dir);
    let token = token_cmd::create(&s.admin, Duration::from_secs(600), "")
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_string();
    let kc = dir.join("agent/kubeconfig");
    let node = format!(
        "joinready-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let log = dir.join("agent.log");
    // A loopback-only conflist so the node's network counts as ready (no pod runs here).
    support::cluster::ready_network(&dir);
    let child = Command::new(env!("CARGO_BIN_EXE_skiff-agent"))
        .arg("--kubeconfig")
        .arg(&kc)
        .args(["--node-name", &node, "--node-ip", "127.0.0.1"])
        .args(["--server", &s.url, "--token", &token])
        .arg("--containerd-socket")
        .arg(&ctrd.socket)
        .args(["--containerd-namespace", "skiff-join-test"])
        .arg("--root-dir")
        .arg(dir.join("root"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--pod-log-dir")
        .arg(dir.join("pods"))
        .arg("--container-log-dir")
        .arg(dir.join("containers"))
        .arg("--cni-conf-dir")
        .arg(dir.join("net.d"))
        .arg("--cni-cache-dir")
        .arg(dir.join("cni-cache"))
        // Not the host's: the storage clean-up asks this test's API server about what is there.
        .arg("--storage-dir")
        .arg(dir.join("storage"))
        .arg("--registry-config")
        .arg(dir.join("registries.yaml"))
        .args(["--cluster-cidr", "10.233.0.0/16", "--kubelet-port", "0"])
        // Pod cgroups under a parent of its own, not the lab's `skiff`.
        .args(["--cgroup-parent", "skiff-join-test"])
        // Neither the service proxy's, the cluster DNS address's nor the network policies' changes to the
        // host's network.
        .args([
            "--proxy-mode",
            "none",
            "--cluster-dns",
            "none",
            "--network-policy",
            "false",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}")))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn skiff-agent: {e}"));
    let _agent = support::cluster::Agent {
        child,
        log: log.clone(),
        cgroup_parent: Some("skiff-join-test".into()),
        namespace: Some("skiff-join-test".into()),
    };
    let admin = client(&dir.join("apiserver/admin.kubeconfig")).await;
    let nodes: Api<Node> = Api::all(admin);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = nodes.get_opt(&node).await.ok().flatten().is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {node} not Ready; agent log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, _, crt, _) = bootstrap::read_kubeconfig(&kc).unwrap_or_else(|e| panic!("{e}"));
    let (_, block) =
        x509_parser::pem::parse_x509_pem(crt.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let cert = block.parse_x509().unwrap_or_else(|e| panic!("{e}"));
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(cn, format!("system:node:{node}"));
}
