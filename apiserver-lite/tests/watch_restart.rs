//! Watches across a restart of the server: resuming from the last resourceVersion seen misses and repeats
//! nothing; resuming from a compacted one gets 410 Expired, which kube-runtime's watcher answers by relisting.

mod common;
mod restart;

use std::time::Duration;

use common::Server;
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use skiff_apiserver::store::Store;
use skiff_apiserver::store::redb::RedbStore;

async fn next<S, T>(s: &mut S) -> T
where
    S: Stream<Item = T> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(20), s.next())
        .await
        .expect("watch event in time")
        .expect("watch stream open")
}

/// The next watch event that is not a BOOKMARK.
async fn next_change<S>(s: &mut S) -> WatchEvent<ConfigMap>
where
    S: Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    loop {
        match next(s).await.expect("event") {
            WatchEvent::Bookmark(_) => continue,
            e => return e,
        }
    }
}

fn name(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resumes_after_server_restart_without_gaps_or_duplicates() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(restart::client(&s).await, "default");
    let pp = PostParams::default();
    let start = api
        .list(&ListParams::default().labels("test=resume"))
        .await
        .expect("list");
    let start_rv = start.metadata.resource_version.clone().expect("list rv");
    for n in ["a1", "a2", "a3"] {
        api.create(&pp, &restart::configmap(n, "resume"))
            .await
            .expect("create");
    }
    // Watch and consume exactly the first three events; remember the last resourceVersion seen.
    let wp = WatchParams::default().labels("test=resume");
    let mut last_rv = String::new();
    {
        let mut w = api.watch(&wp, &start_rv).await.expect("watch").boxed();
        for want in ["a1", "a2", "a3"] {
            match next_change(&mut w).await {
                WatchEvent::Added(cm) => {
                    assert_eq!(name(&cm), want);
                    last_rv = cm.metadata.resource_version.clone().expect("rv");
                }
                other => panic!("expected ADDED {want}, got {other:?}"),
            }
        }
    }
    // kube-runtime's watcher, running across the crash: it must resume, not relist.
    let mut rw = watcher(
        api.clone(),
        watcher::Config::default().labels("test=resume"),
    )
    .default_backoff()
    .boxed();
    let mut initial = Vec::new();
    loop {
        match next(&mut rw).await {
            Ok(watcher::Event::Init) => {}
            Ok(watcher::Event::InitApply(cm)) => initial.push(name(&cm)),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("initial list: {other:?}"),
        }
    }
    assert_eq!(initial, ["a1", "a2", "a3"]);
    // Changes the watcher has not seen yet, before and after the crash.
    api.create(&pp, &restart::configmap("a4", "resume"))
        .await
        .expect("create a4");
    restart::kill9(&mut s);
    restart::restart(&mut s);
    let api: Api<ConfigMap> = Api::namespaced(restart::client(&s).await, "default");
    api.create(&pp, &restart::configmap("a5", "resume"))
        .await
        .expect("create a5");
    api.patch(
        "a1",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await
    .expect("patch a1");
    api.delete("a2", &DeleteParams::default())
        .await
        .expect("delete a2");

    let mut w = api.watch(&wp, &last_rv).await.expect("re-watch").boxed();
    let mut seen = Vec::new();
    let mut prev_rv: i64 = last_rv.parse().expect("numeric rv");
    for _ in 0..4 {
        let (kind, cm) = match next_change(&mut w).await {
            WatchEvent::Added(cm) => ("ADDED", cm),
            WatchEvent::Modified(cm) => ("MODIFIED", cm),
            WatchEvent::Deleted(cm) => ("DELETED", cm),
            other => panic!("unexpected {other:?}"),
        };
        let rv = restart::rv_of(&cm);
        assert!(rv > prev_rv, "events out of order: {rv} after {prev_rv}");
        prev_rv = rv;
        seen.push(format!("{kind} {}", name(&cm)));
    }
    assert_eq!(
        seen,
        ["ADDED a4", "ADDED a5", "MODIFIED a1", "DELETED a2"],
        "resumed watch"
    );
    // Nothing else (no duplicates of a1..a3) arrives.
    let extra = tokio::time::timeout(Duration::from_millis(700), w.next()).await;
    match extra {
        Err(_) | Ok(None) => {}
        Ok(Some(Ok(WatchEvent::Bookmark(_)))) => {}
        Ok(Some(e)) => panic!("unexpected extra event {e:?}"),
    }

    // The kube-runtime watcher saw the same four changes once each, in order, and never relisted.
    let mut changes = Vec::new();
    while changes.len() < 4 {
        match next(&mut rw).await {
            Ok(watcher::Event::Apply(cm)) => changes.push(format!("apply {}", name(&cm))),
            Ok(watcher::Event::Delete(cm)) => changes.push(format!("delete {}", name(&cm))),
            // Connection errors while the server was down; the watcher retries with backoff.
            Err(_) => {}
            Ok(other) => panic!("watcher relisted or misbehaved: {other:?} after {changes:?}"),
        }
    }
    assert_eq!(changes, ["apply a4", "apply a5", "apply a1", "delete a2"]);
    match tokio::time::timeout(Duration::from_millis(700), rw.next()).await {
        Err(_) | Ok(Some(Err(_))) => {}
        Ok(other) => panic!("unexpected extra watcher event {other:?}"),
    }
}

/// Stop the server, then advance and compact its store past every revision it has served.
async fn compact_offline(s: &mut Server) -> i64 {
    restart::kill9(s);
    let store = RedbStore::open(&s.data_dir().join("store.redb")).expect("open server store");
    // A key outside /registry: invisible to the API, it only moves the revision on.
    store
        .create("/skiff-test/filler", b"x".to_vec())
        .await
        .expect("filler");
    let rev = store.current_revision().await.expect("revision");
    store.compact(rev).await.expect("compact");
    drop(store);
    restart::restart(s);
    rev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_resource_version_is_410_and_kube_runtime_relists() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(restart::client(&s).await, "default");
    let pp = PostParams::default();
    let old = api
        .create(&pp, &restart::configmap("c1", "expire"))
        .await
        .expect("create c1");
    let old_rv = old.metadata.resource_version.clone().expect("rv");

    // kube-runtime's watcher, running across the restart and the compaction.
    let mut w = watcher(
        api.clone(),
        watcher::Config::default().labels("test=expire"),
    )
    .default_backoff()
    .boxed();
    let mut names = Vec::new();
    loop {
        match next(&mut w).await {
            Ok(watcher::Event::Init) => {}
            Ok(watcher::Event::InitApply(cm)) => names.push(name(&cm)),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("initial list: {other:?}"),
        }
    }
    assert_eq!(names, ["c1"]);

    compact_offline(&mut s).await;
    let api: Api<ConfigMap> = Api::namespaced(restart::client(&s).await, "default");
    api.create(&pp, &restart::configmap("c2", "expire"))
        .await
        .expect("create c2");

    // A raw watch from the compacted revision: 410 Expired (as the ERROR event or the response status).
    match api.watch(&WatchParams::default(), &old_rv).await {
        Ok(stream) => {
            let mut stream = stream.boxed();
            match next(&mut stream).await {
                Ok(WatchEvent::Error(st)) => {
                    assert_eq!(st.code, 410, "{st:?}");
                    assert_eq!(st.reason, "Expired", "{st:?}");
                }
                Err(kube::Error::Api(st)) => assert_eq!(st.code, 410, "{st:?}"),
                other => panic!("expected 410 Expired, got {other:?}"),
            }
        }
        Err(kube::Error::Api(st)) => assert_eq!(st.code, 410, "{st:?}"),
        Err(e) => panic!("expected 410 Expired, got {e:?}"),
    }

    // The watcher lost its connection, re-watches from its compacted revision, gets 410 and relists:
    // a second Init … InitDone that contains c1 and c2.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut relisted = None;
    let mut page = Vec::new();
    while relisted.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watcher never relisted"
        );
        match next(&mut w).await {
            Ok(watcher::Event::Init) => page.clear(),
            Ok(watcher::Event::InitApply(cm)) => page.push(name(&cm)),
            Ok(watcher::Event::InitDone) => relisted = Some(page.clone()),
            // Connection errors while the server was down; the watcher retries with backoff.
            Ok(watcher::Event::Apply(_)) | Ok(watcher::Event::Delete(_)) | Err(_) => {}
        }
    }
    let mut relisted = relisted.unwrap_or_default();
    relisted.sort();
    assert_eq!(relisted, ["c1", "c2"]);
}
