//! The shared conformance suite every [`Store`] implementation must pass.
//!
//! Each check works under its own random key prefix and asserts only relative revisions, so the suite also
//! runs against a backend shared with other data (a real etcd). The checks run one after another; `make` may
//! return a fresh store or a new handle to the same one.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{KeyValue, Revision, Store, StoreError, WatchEvent, WatchStream};

const STEP: Duration = Duration::from_secs(10);

/// Run every backend-independent check.
pub async fn run_all(make: impl Fn() -> Arc<dyn Store>) {
    revision_increments(make()).await;
    create_conflict(make()).await;
    update_and_delete_guards(make()).await;
    list_at_revision(make()).await;
    prefix_isolation(make()).await;
    watch_replay_then_live(make()).await;
    watch_event_shapes(make()).await;
    watch_future_revision(make()).await;
    watch_no_gap_under_concurrent_writes(make()).await;
    compaction(make()).await;
    concurrent_writers_lose_no_update(make()).await;
}

/// Data and revisions survive closing and reopening. `open` must return a handle to the same backing
/// store each time, and the previous handle must be fully closed once dropped.
pub async fn durability(open: impl Fn() -> Arc<dyn Store>) {
    let p = prefix();
    let store = open();
    let r1 = ok(store.create(&format!("{p}a"), b"one".to_vec()).await);
    let r2 = ok(store.update(&format!("{p}a"), b"two".to_vec(), r1).await);
    let r3 = ok(store.create(&format!("{p}b"), b"bee".to_vec()).await);
    let (_, r4) = ok(store.delete(&format!("{p}b"), None).await);
    let before = ok(store.current_revision().await);
    assert_eq!(before, r4);
    drop(store);

    let store = open();
    assert_eq!(
        ok(store.current_revision().await),
        before,
        "revision lost across reopen"
    );
    let a = ok(store.get(&format!("{p}a")).await).expect("key a lost across reopen");
    assert_eq!(
        (a.value.as_slice(), a.create_revision, a.mod_revision),
        (&b"two"[..], r1, r2)
    );
    assert_eq!(
        ok(store.get(&format!("{p}b")).await),
        None,
        "deletion lost across reopen"
    );
    // History survives too: a watch from before the writes replays them.
    let mut watch = ok(store.watch(&p, r1 - 1).await);
    let revisions: Vec<Revision> = take(&mut watch, 4)
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(revisions, vec![r1, r2, r3, r4]);
    let r5 = ok(store.create(&format!("{p}c"), b"c".to_vec()).await);
    assert_eq!(r5, before + 1, "revisions must continue after reopen");
}

fn prefix() -> String {
    format!("/conformance/{}/", uuid::Uuid::new_v4())
}

#[track_caller]
fn ok<T>(result: Result<T, StoreError>) -> T {
    match result {
        Ok(v) => v,
        Err(err) => panic!("store operation failed: {err}"),
    }
}

async fn next(watch: &mut WatchStream) -> WatchEvent {
    match tokio::time::timeout(STEP, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended early"),
        Err(_) => panic!("no watch event within {STEP:?}"),
    }
}

async fn take(watch: &mut WatchStream, n: usize) -> Vec<WatchEvent> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next(watch).await);
    }
    out
}

async fn assert_quiet(watch: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), watch.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn put_kv(event: &WatchEvent) -> &KeyValue {
    match event {
        WatchEvent::Put { kv, .. } => kv,
        WatchEvent::Delete { kv } => panic!("expected a put, got a delete of {}", kv.key),
    }
}

async fn revision_increments(store: Arc<dyn Store>) {
    let p = prefix();
    let r0 = ok(store.current_revision().await);
    assert!(r0 >= 1, "revisions start at 1");
    let r1 = ok(store.create(&format!("{p}a"), b"1".to_vec()).await);
    assert_eq!(r1, r0 + 1);
    assert_eq!(ok(store.current_revision().await), r1);
    let r2 = ok(store.create(&format!("{p}b"), b"2".to_vec()).await);
    assert_eq!(r2, r1 + 1);
    let r3 = ok(store.update(&format!("{p}a"), b"3".to_vec(), r1).await);
    assert_eq!(r3, r2 + 1);
    let a = ok(store.get(&format!("{p}a")).await).expect("a exists");
    assert_eq!(
        a,
        KeyValue {
            key: format!("{p}a"),
            value: b"3".to_vec(),
            create_revision: r1,
            mod_revision: r3
        }
    );
    let (deleted, r4) = ok(store.delete(&format!("{p}b"), None).await);
    assert_eq!(r4, r3 + 1);
    assert_eq!(
        (
            deleted.value.as_slice(),
            deleted.create_revision,
            deleted.mod_revision
        ),
        (&b"2"[..], r2, r2)
    );
    // Failed writes do not consume revisions.
    assert!(store.create(&format!("{p}a"), b"x".to_vec()).await.is_err());
    assert!(
        store
            .update(&format!("{p}a"), b"x".to_vec(), r1)
            .await
            .is_err()
    );
    assert!(store.delete(&format!("{p}b"), None).await.is_err());
    assert_eq!(ok(store.current_revision().await), r4);
}

async fn create_conflict(store: Arc<dyn Store>) {
    let p = prefix();
    let key = format!("{p}k");
    let r1 = ok(store.create(&key, b"first".to_vec()).await);
    match store.create(&key, b"second".to_vec()).await {
        Err(StoreError::AlreadyExists(k)) => assert_eq!(k, key),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let kv = ok(store.get(&key).await).expect("key exists");
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"first"[..], r1));
    // After a delete the key can be created again, with a new create_revision.
    ok(store.delete(&key, Some(r1)).await);
    let r3 = ok(store.create(&key, b"third".to_vec()).await);
    let kv = ok(store.get(&key).await).expect("key exists");
    assert_eq!((kv.create_revision, kv.mod_revision), (r3, r3));
    assert_eq!(ok(store.get(&format!("{p}missing")).await), None);
}

async fn update_and_delete_guards(store: Arc<dyn Store>) {
    let p = prefix();
    let key = format!("{p}k");
    let r1 = ok(store.create(&key, b"v1".to_vec()).await);
    let r2 = ok(store.update(&key, b"v2".to_vec(), r1).await);
    match store.update(&key, b"stale".to_vec(), r1).await {
        Err(StoreError::Conflict {
            key: k,
            expected,
            actual,
        }) => assert_eq!((k, expected, actual), (key.clone(), r1, r2)),
        other => panic!("expected Conflict, got {other:?}"),
    }
    match store.delete(&key, Some(r1)).await {
        Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, r2),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let kv = ok(store.get(&key).await).expect("a failed guard changes nothing");
    assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"v2"[..], r2));
    match store
        .update(&format!("{p}missing"), b"x".to_vec(), r1)
        .await
    {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    match store.delete(&format!("{p}missing"), None).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    let (deleted, r3) = ok(store.delete(&key, Some(r2)).await);
    assert!(r3 > r2);
    assert_eq!(deleted.value, b"v2".to_vec());
    assert_eq!(ok(store.get(&key).await), None);
    match store.delete(&key, Some(r2)).await {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound after delete, got {other:?}"),
    }
}

async fn list_at_revision(store: Arc<dyn Store>) {
    let p = prefix();
    let (empty, r0) = ok(store.list(&p).await);
    assert!(empty.is_empty());
    assert_eq!(r0, ok(store.current_revision().await));
    for name in ["c", "a", "b"] {
        ok(store
            .create(&format!("{p}items/{name}"), name.as_bytes().to_vec())
            .await);
    }
    let other = ok(store.create(&format!("{p}other/x"), b"x".to_vec()).await);
    let (items, revision) = ok(store.list(&format!("{p}items/")).await);
    let keys: Vec<&str> = items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("{p}items/a"),
            format!("{p}items/b"),
            format!("{p}items/c")
        ]
    );
    assert_eq!(items[0].value, b"a".to_vec());
    assert_eq!(revision, other, "a list is read at the current revision");
    assert!(items.iter().all(|kv| kv.mod_revision <= revision));
    let (all, _) = ok(store.list(&p).await);
    assert_eq!(all.len(), 4);
}

async fn prefix_isolation(store: Arc<dyn Store>) {
    let p = prefix();
    let a = format!("{p}pods/a");
    let ab = format!("{p}pods/ab");
    let r0 = ok(store.current_revision().await);
    ok(store.create(&format!("{a}/x"), b"a".to_vec()).await);
    ok(store.create(&format!("{ab}/y"), b"ab".to_vec()).await);
    ok(store.create(&ab, b"ab-object".to_vec()).await);
    let (items, _) = ok(store.list(&format!("{a}/")).await);
    assert_eq!(
        items.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        vec![format!("{a}/x")]
    );
    assert_eq!(
        ok(store.get(&a).await),
        None,
        "get is exact, never a prefix match"
    );
    let mut watch = ok(store.watch(&format!("{a}/"), r0).await);
    assert_eq!(put_kv(&next(&mut watch).await).key, format!("{a}/x"));
    ok(store.create(&format!("{ab}/z"), b"ab".to_vec()).await);
    ok(store.create(&format!("{a}/w"), b"a".to_vec()).await);
    assert_eq!(put_kv(&next(&mut watch).await).key, format!("{a}/w"));
    assert_quiet(&mut watch).await;
}

async fn watch_replay_then_live(store: Arc<dyn Store>) {
    let p = prefix();
    let r0 = ok(store.current_revision().await);
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(ok(store.create(&format!("{p}k{i}"), vec![i]).await));
    }
    let mut from_start = ok(store.watch(&p, r0).await);
    let mut from_middle = ok(store.watch(&p, written[2]).await);
    let mut from_now = ok(store.watch(&p, written[4]).await);
    let replayed: Vec<Revision> = take(&mut from_start, 5)
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(replayed, written);
    let replayed: Vec<Revision> = take(&mut from_middle, 2)
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(replayed, written[3..].to_vec());
    assert_quiet(&mut from_now).await;
    let live = ok(store.create(&format!("{p}live"), b"live".to_vec()).await);
    for watch in [&mut from_start, &mut from_middle, &mut from_now] {
        let event = next(watch).await;
        assert_eq!(event.revision(), live);
        assert_eq!(put_kv(&event).value, b"live".to_vec());
    }
}

async fn watch_event_shapes(store: Arc<dyn Store>) {
    let p = prefix();
    let key = format!("{p}obj");
    let r0 = ok(store.current_revision().await);
    let mut watch = ok(store.watch(&p, r0).await);
    let r1 = ok(store.create(&key, b"v1".to_vec()).await);
    let r2 = ok(store.update(&key, b"v2".to_vec(), r1).await);
    let (_, r3) = ok(store.delete(&key, Some(r2)).await);
    let v1 = KeyValue {
        key: key.clone(),
        value: b"v1".to_vec(),
        create_revision: r1,
        mod_revision: r1,
    };
    let v2 = KeyValue {
        key: key.clone(),
        value: b"v2".to_vec(),
        create_revision: r1,
        mod_revision: r2,
    };
    let gone = KeyValue {
        key: key.clone(),
        value: b"v2".to_vec(),
        create_revision: r1,
        mod_revision: r3,
    };
    let expected = vec![
        WatchEvent::Put {
            kv: v1.clone(),
            prev: None,
        },
        WatchEvent::Put {
            kv: v2,
            prev: Some(v1),
        },
        WatchEvent::Delete { kv: gone },
    ];
    assert_eq!(take(&mut watch, 3).await, expected.clone(), "live events");
    let mut replay = ok(store.watch(&p, r0).await);
    assert_eq!(
        take(&mut replay, 3).await,
        expected,
        "replayed events equal live ones"
    );
}

async fn watch_future_revision(store: Arc<dyn Store>) {
    let current = ok(store.current_revision().await);
    match store.watch(&prefix(), current + 10).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, current + 10),
        Err(err) => panic!("expected FutureRevision, got {err}"),
        Ok(_) => panic!("expected FutureRevision, got a stream"),
    }
}

async fn watch_no_gap_under_concurrent_writes(store: Arc<dyn Store>) {
    let p = prefix();
    let start = ok(store.current_revision().await);
    let writer = {
        let store = store.clone();
        let p = p.clone();
        tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..200 {
                revisions.push(ok(store.create(&format!("{p}{i:04}"), vec![]).await));
            }
            revisions
        })
    };
    // Register watches at moments while writes are in flight; each must see every later write exactly once.
    let mut watches = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(3)).await;
        let after = ok(store.current_revision().await);
        watches.push((after, ok(store.watch(&p, after).await)));
    }
    let written = ok(writer.await.map_err(|e| StoreError::Backend(e.to_string())));
    let mut from_start = ok(store.watch(&p, start).await);
    let seen: Vec<Revision> = take(&mut from_start, 200)
        .await
        .iter()
        .map(WatchEvent::revision)
        .collect();
    assert_eq!(seen, written);
    for (after, mut watch) in watches {
        let expected: Vec<Revision> = written.iter().copied().filter(|r| *r > after).collect();
        let seen: Vec<Revision> = take(&mut watch, expected.len())
            .await
            .iter()
            .map(WatchEvent::revision)
            .collect();
        assert_eq!(seen, expected, "watch from {after}");
        assert_quiet(&mut watch).await;
    }
}

async fn compaction(store: Arc<dyn Store>) {
    let p = prefix();
    let r1 = ok(store.create(&format!("{p}a"), b"1".to_vec()).await);
    let r2 = ok(store.update(&format!("{p}a"), b"2".to_vec(), r1).await);
    let r3 = ok(store.update(&format!("{p}a"), b"3".to_vec(), r2).await);
    ok(store.compact(r2).await);
    for after in [r1 - 1, r1] {
        match store.watch(&p, after).await {
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                assert_eq!(requested, after);
                assert!(compacted >= r2);
            }
            Err(err) => panic!("expected Compacted, got {err}"),
            Ok(_) => panic!("watch from compacted revision {after} must fail"),
        }
    }
    let mut watch = ok(store.watch(&p, r2).await);
    assert_eq!(next(&mut watch).await.revision(), r3);
    let kv = ok(store.get(&format!("{p}a")).await).expect("compaction keeps current values");
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"3"[..], r1, r3)
    );
    let (items, _) = ok(store.list(&p).await);
    assert_eq!(items.len(), 1);
    // Compacting again at or below the compacted revision changes nothing.
    match store.compact(r1).await {
        Ok(()) | Err(StoreError::Compacted { .. }) => {}
        Err(err) => panic!("re-compaction failed: {err}"),
    }
    let current = ok(store.current_revision().await);
    match store.compact(current + 5).await {
        Err(StoreError::FutureRevision { .. }) => {}
        other => panic!("compacting a future revision must fail, got {other:?}"),
    }
    // Writes continue normally after compaction.
    let r4 = ok(store.update(&format!("{p}a"), b"4".to_vec(), r3).await);
    assert_eq!(next(&mut watch).await.revision(), r4);
}

async fn concurrent_writers_lose_no_update(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const INCREMENTS: usize = 25;
    let key = format!("{}counter", prefix());
    ok(store.create(&key, b"0".to_vec()).await);
    let start = ok(store.current_revision().await);
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            while revisions.len() < INCREMENTS {
                let kv = ok(store.get(&key).await).expect("counter exists");
                let n: u64 = String::from_utf8_lossy(&kv.value)
                    .parse()
                    .expect("counter is a number");
                match store
                    .update(&key, (n + 1).to_string().into_bytes(), kv.mod_revision)
                    .await
                {
                    Ok(revision) => revisions.push(revision),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(err) => panic!("update failed: {err}"),
                }
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(ok(task
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))));
    }
    let kv = ok(store.get(&key).await).expect("counter exists");
    assert_eq!(
        String::from_utf8_lossy(&kv.value),
        (WRITERS * INCREMENTS).to_string(),
        "lost update"
    );
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        WRITERS * INCREMENTS,
        "two writes got the same revision"
    );
    assert_eq!(
        ok(store.current_revision().await),
        start + (WRITERS * INCREMENTS) as Revision
    );
}
