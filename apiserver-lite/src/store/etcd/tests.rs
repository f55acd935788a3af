//! The conformance suite against a real etcd 3.4 (Debian's etcd-server), started here on a temporary data
//! directory and free 127.0.0.1 ports, and stopped by PID.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::EtcdStore;
use crate::store::redb::tests::TempDir;
use crate::store::{Store, conformance};

pub(crate) struct Etcd {
    child: Child,
    pub(crate) url: String,
    _dir: TempDir,
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

pub(crate) async fn start_etcd() -> Etcd {
    let dir = TempDir::new();
    let (client, peer) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new("etcd")
        .args(["--name", "conformance", "--data-dir"])
        .arg(dir.path().join("etcd"))
        .args([
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .arg(format!("--initial-cluster=conformance={peer_url}"))
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
        if EtcdStore::connect(std::slice::from_ref(&etcd.url), "")
            .await
            .is_ok()
        {
            return etcd;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("etcd did not come up on {}", etcd.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_etcd() {
    let etcd = start_etcd().await;
    let store: Arc<dyn Store> = Arc::new(
        EtcdStore::connect(std::slice::from_ref(&etcd.url), "/skiff")
            .await
            .expect("connect"),
    );
    conformance::run_all(|| store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_isolate_servers_sharing_one_etcd() {
    let etcd = start_etcd().await;
    let url = std::slice::from_ref(&etcd.url);
    let a = EtcdStore::connect(url, "/a").await.expect("connect a");
    let b = EtcdStore::connect(url, "/a-b").await.expect("connect b");
    a.create("/registry/x", b"a".to_vec())
        .await
        .expect("create");
    b.create("/registry/x", b"b".to_vec())
        .await
        .expect("create");
    let (items, _) = a.list("").await.expect("list");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].key, "/registry/x");
    assert_eq!(items[0].value, b"a".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_through_more_keys_than_one_range() {
    let etcd = start_etcd().await;
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.url), "")
        .await
        .expect("connect");
    for i in 0..(super::PAGE * 2 + 7) {
        store
            .create(&format!("/many/{i:05}"), vec![1])
            .await
            .expect("create");
    }
    store
        .create("/other", vec![])
        .await
        .expect("create outside the prefix");
    let (items, rev) = store.list("/many/").await.expect("list");
    assert_eq!(items.len() as i64, super::PAGE * 2 + 7);
    assert!(items.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(rev, store.current_revision().await.expect("rev"));
}
