//! skiff-apiserver on a real etcd 3.4 (`--storage etcd`): kube-rs creates, lists and watches through the
//! server, the objects are in etcd under the configured prefix in kube-apiserver's key layout, and a
//! restarted server (same etcd) sees them and resumes a watch from an old resourceVersion.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

struct Etcd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn start_etcd() -> Etcd {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let child = Command::new("etcd")
        .args(["--name", "skiff-test", "--data-dir"])
        .arg(dir.path().join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .arg(format!("--initial-cluster=skiff-test={peer}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd (apt-get install etcd-server)");
    let etcd = Etcd {
        child,
        url,
        _dir: dir,
    };
    for _ in 0..100 {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "1", &format!("{}/health", etcd.url)])
            .output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("true")) {
            return etcd;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("etcd did not come up on {}", etcd.url);
}

async fn client(s: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"test": "etcd"}},
        "data": {"k": name}
    }))
    .expect("configmap")
}

/// Keys in etcd under `prefix`, through the v3 JSON gateway (base64 keys).
fn etcd_keys(etcd: &Etcd, prefix: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let body = serde_json::json!({"key": b64.encode(prefix), "range_end": b64.encode(&end), "keys_only": true});
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-X",
            "POST",
            "-d",
            &body.to_string(),
        ])
        .arg(format!("{}/v3/kv/range", etcd.url))
        .output()
        .expect("curl etcd");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcd reply");
    reply["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv["key"].as_str())
                .filter_map(|k| b64.decode(k).ok())
                .map(|k| String::from_utf8_lossy(&k).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

type Events = futures::stream::BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>;

/// The next event that is not a bookmark.
async fn next_event(watch: &mut Events) -> WatchEvent<ConfigMap> {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch event in time")
            .expect("stream open")
            .expect("event");
        if !matches!(event, WatchEvent::Bookmark(_)) {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_on_etcd_serves_create_list_watch() {
    if !common::have("etcd") {
        panic!("etcd (Debian etcd-server) is required for this test");
    }
    let etcd = start_etcd();
    let flags = [
        "--storage",
        "etcd",
        "--etcd-servers",
        etcd.url.as_str(),
        "--etcd-prefix",
        "/skiff-test",
    ];
    let server = Server::start_with(&flags);
    let cms: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");

    let before = cms
        .list(&ListParams::default().labels("test=etcd"))
        .await
        .expect("list");
    assert!(before.items.is_empty());
    let list_rv = before.metadata.resource_version.clone().expect("list rv");

    let mut watch = cms
        .watch(&WatchParams::default().labels("test=etcd"), &list_rv)
        .await
        .expect("watch")
        .boxed();
    let created = cms
        .create(&PostParams::default(), &config_map("one"))
        .await
        .expect("create");
    let rv: i64 = created
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("numeric resourceVersion");
    assert!(
        rv > list_rv.parse::<i64>().expect("list rv numeric"),
        "resourceVersion is etcd's revision"
    );
    match next_event(&mut watch).await {
        WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("one")),
        other => panic!("expected ADDED, got {other:?}"),
    }

    // kube-apiserver's layout under the prefix: <prefix>/registry/<resource>/<namespace>/<name>.
    let keys = etcd_keys(&etcd, "/skiff-test/registry/configmaps/");
    assert!(
        keys.contains(&"/skiff-test/registry/configmaps/default/one".to_string()),
        "keys in etcd: {keys:?}"
    );

    // kubectl sees it too.
    let got = server.ok(&["get", "configmap", "one", "-o", "jsonpath={.data.k}"]);
    assert_eq!(got, "one");

    // A second server on the same etcd (the first one stopped) serves the same data, and a watch from the
    // old list revision replays the creation.
    drop(watch);
    drop(server);
    let server = Server::start_with(&flags);
    let cms: Api<ConfigMap> = Api::namespaced(client(&server).await, "default");
    let names: Vec<String> = cms
        .list(&ListParams::default().labels("test=etcd"))
        .await
        .expect("list after restart")
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    assert_eq!(names, vec!["one".to_string()]);
    let mut replay = cms
        .watch(&WatchParams::default().labels("test=etcd"), &list_rv)
        .await
        .expect("watch after restart")
        .boxed();
    let event = next_event(&mut replay).await;
    assert!(
        matches!(&event, WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some("one")),
        "expected the replayed ADDED, got {event:?}"
    );
    drop(replay);

    // History compacted in etcd by someone else (etcdctl, another server): a watch from before it is
    // 410 Expired, as with the embedded store.
    let revision = etcd_revision(&etcd);
    etcd_post(
        &etcd,
        "/v3/kv/compaction",
        &serde_json::json!({"revision": revision.to_string(), "physical": true}),
    );
    let mut expired = cms
        .watch(&WatchParams::default().labels("test=etcd"), &list_rv)
        .await
        .expect("watch request")
        .boxed();
    match next_event(&mut expired).await {
        WatchEvent::Error(e) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

fn etcd_post(etcd: &Etcd, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "5",
            "-X",
            "POST",
            "-d",
            &body.to_string(),
        ])
        .arg(format!("{}{path}", etcd.url))
        .output()
        .expect("curl etcd");
    serde_json::from_slice(&out.stdout).expect("etcd reply")
}

fn etcd_revision(etcd: &Etcd) -> i64 {
    let reply = etcd_post(etcd, "/v3/kv/range", &serde_json::json!({"key": "AA=="}));
    reply["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("etcd header revision")
}
