use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{RedbOptions, RedbStore};
use crate::store::{Store, StoreError, conformance};

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("skiff-store-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(path: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(path).expect("open store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let dir = TempDir::new();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    conformance::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        open(&dir.path().join(format!("store-{n}.redb")))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_one_shared_store() {
    let dir = TempDir::new();
    let store = open(&dir.path().join("shared.redb"));
    conformance::run_all(|| store.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_across_reopen() {
    let dir = TempDir::new();
    let path = dir.path().join("durable.redb");
    conformance::durability(|| open(&path)).await;
}

#[tokio::test]
async fn fresh_store_starts_at_revision_one() {
    let dir = TempDir::new();
    let store = open(&dir.path().join("fresh.redb"));
    assert_eq!(store.current_revision().await.ok(), Some(1));
    assert_eq!(store.create("/a", vec![]).await.ok(), Some(2));
    // A watch from 0 replays everything ever written.
    let mut watch = store.watch("/", 0).await.expect("watch");
    let first = watch
        .next()
        .await
        .and_then(Result::ok)
        .map(|e| e.revision());
    assert_eq!(first, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_watcher_is_dropped_without_blocking_writers() {
    let dir = TempDir::new();
    let store = RedbStore::open(&dir.path().join("slow.redb")).expect("open store");
    let mut slow = store.watch("/k/", 1).await.expect("watch");
    let total = super::watch::WATCH_BUFFER + 100;
    // Many writers at once so that group commit keeps this fast.
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for t in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..total).step_by(16) {
                store
                    .create(&format!("/k/{i:06}"), vec![])
                    .await
                    .expect("create");
            }
        }));
    }
    let writes = async {
        for task in tasks {
            task.await.expect("writer task");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), writes)
        .await
        .expect("writers were blocked by a slow watcher");
    assert_eq!(
        store.watcher_count().await,
        0,
        "the slow watcher is dropped"
    );
    let mut received = 0;
    while let Some(item) = slow.next().await {
        item.expect("buffered events are intact");
        received += 1;
    }
    assert!(
        received < total,
        "the stream ends early instead of growing without bound"
    );
}

#[tokio::test]
async fn dropped_streams_are_unregistered() {
    let dir = TempDir::new();
    let store = RedbStore::open(&dir.path().join("drop.redb")).expect("open store");
    let watch = store.watch("/", 1).await.expect("watch");
    assert_eq!(store.watcher_count().await, 1);
    drop(watch);
    store.create("/x", vec![]).await.expect("create");
    assert_eq!(store.watcher_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_compaction_bounds_history() {
    let dir = TempDir::new();
    let options = RedbOptions {
        history_retention: Duration::from_secs(3600),
        max_history: 10,
        compaction_interval: Some(Duration::from_millis(50)),
    };
    let store = RedbStore::open_with(&dir.path().join("auto.redb"), options).expect("open store");
    for i in 0..30 {
        store
            .create(&format!("/k/{i}"), vec![])
            .await
            .expect("create");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let current = store.current_revision().await.expect("revision");
    match store.watch("/", 1).await {
        Err(StoreError::Compacted { compacted, .. }) => assert_eq!(compacted, current - 10),
        Err(err) => panic!("expected Compacted, got {err}"),
        Ok(_) => panic!("old history should have been compacted"),
    }
    assert!(store.watch("/", current - 10).await.is_ok());
    assert_eq!(store.list("/k/").await.expect("list").0.len(), 30);
}

#[tokio::test]
async fn not_a_database_is_a_clear_error() {
    let dir = TempDir::new();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0x42u8; 8192]).expect("write garbage");
    match RedbStore::open(&path) {
        Err(StoreError::Backend(msg)) => assert!(msg.contains("garbage.redb"), "{msg}"),
        Err(err) => panic!("unexpected error {err}"),
        Ok(_) => panic!("opened a file that is not a database"),
    }
}

#[tokio::test]
async fn dropping_the_store_ends_live_watches() {
    let dir = TempDir::new();
    let store = RedbStore::open(&dir.path().join("end.redb")).expect("open store");
    let mut watch = store.watch("/", 1).await.expect("watch");
    drop(store);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("stream ends");
    assert!(end.is_none());
}

#[tokio::test]
async fn compaction_during_replay_ends_the_stream_with_compacted() {
    let dir = TempDir::new();
    let store = RedbStore::open(&dir.path().join("replay.redb")).expect("open store");
    let r1 = store.create("/a", vec![]).await.expect("create");
    store.create("/b", vec![]).await.expect("create");
    let r3 = store.create("/c", vec![]).await.expect("create");
    let mut watch = store
        .watch("/", r1)
        .await
        .expect("watch from a retained revision");
    store.compact(r3).await.expect("compact");
    store.create("/d", vec![]).await.expect("create");
    match watch.next().await {
        Some(Err(StoreError::Compacted {
            requested,
            compacted,
        })) => assert_eq!((requested, compacted), (r1, r3)),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("stream ends");
    assert!(end.is_none(), "no events after the error: {end:?}");
}

/// Write throughput on a real disk (run with `--ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_on_disk() {
    let dir =
        std::path::Path::new("/var/tmp").join(format!("skiff-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Arc::new(RedbStore::open(&dir.join("bench.redb")).expect("open store"));
    let value = vec![b'x'; 2048];
    let start = std::time::Instant::now();
    for i in 0..200 {
        store
            .create(&format!("/seq/{i}"), value.clone())
            .await
            .expect("create");
    }
    let seq = start.elapsed();
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                store
                    .create(&format!("/par/{t}/{i}"), value.clone())
                    .await
                    .expect("create");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let par = start.elapsed();
    eprintln!(
        "sequential: {:.0} writes/s; 50 concurrent writers: {:.0} writes/s",
        200.0 / seq.as_secs_f64(),
        1000.0 / par.as_secs_f64()
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
