//! Durability under `kill -9`: every acknowledged write survives, revisions stay monotonic.
//!
//! - Server level: 16 kube-rs clients create ConfigMaps against the real skiff-apiserver; the server is
//!   SIGKILLed mid-burst and restarted on the same data directory.
//! - Store level: a child process (this test binary, re-executed) writes to a `RedbStore` from 16 tasks and
//!   prints each acknowledged revision; it is SIGKILLed mid-burst and the store is reopened.

mod common;
mod restart;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Server;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use skiff_apiserver::store::Store;
use skiff_apiserver::store::redb::RedbStore;

const CLIENTS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_creates_survive_kill_9_of_the_server() {
    let mut s = Server::start();
    let client = restart::client(&s).await;
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let name = format!("crash-{c}-{i}");
                match api
                    .create(&PostParams::default(), &restart::configmap(&name, "crash"))
                    .await
                {
                    Ok(cm) => {
                        acked
                            .lock()
                            .expect("lock")
                            .insert(name, restart::rv_of(&cm));
                    }
                    // The server is gone: this write was never acknowledged.
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the burst run, then kill the server while requests are in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.lock().expect("lock").len() < 300 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    restart::kill9(&mut s);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("clients stop once the server is gone")
            .expect("client task");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 100,
        "too few writes acknowledged: {}",
        acked.len()
    );
    // Revisions handed out were unique.
    let mut revs: Vec<i64> = acked.values().copied().collect();
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), acked.len(), "duplicate resourceVersions");
    let max_acked = revs.last().copied().unwrap_or(0);

    restart::restart(&mut s);
    let client = restart::client(&s).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let list = api
        .list(&ListParams::default().labels("test=crash"))
        .await
        .expect("list after restart");
    let found: BTreeMap<String, i64> = list
        .items
        .iter()
        .map(|cm| {
            (
                cm.metadata.name.clone().unwrap_or_default(),
                restart::rv_of(cm),
            )
        })
        .collect();
    for (name, rv) in &acked {
        assert_eq!(
            found.get(name),
            Some(rv),
            "acknowledged {name} at {rv} is missing or changed after kill -9"
        );
    }
    // New writes get higher revisions than anything acknowledged (or lost) before the crash.
    let list_rv: i64 = list
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("list resourceVersion");
    assert!(list_rv >= max_acked);
    let after = api
        .create(
            &PostParams::default(),
            &restart::configmap("after-crash", "crash"),
        )
        .await
        .expect("create after restart");
    assert!(restart::rv_of(&after) > max_acked);
    assert!(restart::rv_of(&after) > found.values().copied().max().unwrap_or(0));
    eprintln!(
        "crash test: {} acknowledged, {} present after restart",
        acked.len(),
        found.len()
    );
}

/// Set in the child process: the path of the store to write to.
const CHILD_ENV: &str = "SKIFF_CRASH_CHILD_STORE";

/// The child half of the store-level crash test; does nothing unless run by the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Arc::new(RedbStore::open(std::path::Path::new(&path)).expect("open store"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let store = store.clone();
        let out = out.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("/crash/{c}/{i}");
                let rev = store.create(&key, vec![b'x'; 512]).await.expect("create");
                let mut o = out.lock().expect("stdout");
                writeln!(o, "ack {key} {rev}").expect("stdout");
                o.flush().expect("flush");
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_store_writes_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store.redb");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "store_crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acked = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        let mut f = line.split_whitespace();
        if f.next() != Some("ack") {
            continue;
        }
        let (Some(key), Some(rev)) = (f.next(), f.next().and_then(|r| r.parse::<i64>().ok()))
        else {
            continue;
        };
        acked.insert(key.to_string(), rev);
        if acked.len() == 2000 {
            child.kill().expect("SIGKILL child");
            break;
        }
    }
    let _ = child.wait();
    assert_eq!(acked.len(), 2000, "child stopped early");

    let store = RedbStore::open(&path).expect("reopen after SIGKILL");
    let current = store.current_revision().await.expect("revision");
    for (key, rev) in &acked {
        let kv = store
            .get(key)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(kv.mod_revision, *rev, "{key}");
        assert!(*rev <= current);
    }
    let next = store
        .create("/crash/after", b"y".to_vec())
        .await
        .expect("create");
    assert!(
        next > current,
        "revision went backwards: {next} <= {current}"
    );
}
