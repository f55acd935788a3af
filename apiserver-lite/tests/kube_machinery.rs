//! kube-rs 5 against the real server: the new kinds typed, list paging with continue tokens,
//! `resourceVersionMatch=Exact`, deletecollection, streaming lists (`sendInitialEvents`) and
//! server-side apply with conflicts.

mod common;

use std::time::Duration;

use common::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, VersionMatch, WatchEvent,
    WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;

async fn client(s: &Server) -> kube::Client {
    let kc = Kubeconfig::read_from(&s.kubeconfig).expect("read kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}},
        "data": {"k": name}}))
    .expect("configmap")
}

/// Wait for the root CA publisher's `kube-root-ca.crt` (every namespace has one, as in kube), so that
/// listings below see it for sure.
async fn wait_root_ca(cms: &Api<ConfigMap>) {
    for _ in 0..100 {
        if cms
            .get_opt("kube-root-ca.crt")
            .await
            .expect("get")
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no kube-root-ca.crt");
}

fn api_code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_kinds_paging_and_deletecollection() {
    let s = Server::start();
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    wait_root_ca(&cms).await;
    for i in 0..5 {
        let app = if i < 3 { "a" } else { "b" };
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), app))
            .await
            .expect("create");
    }
    // Pages of two, one snapshot: a create between pages is not seen.
    let p1 = cms.list(&ListParams::default().limit(2)).await.expect("p1");
    assert_eq!(p1.items.len(), 2);
    let token = p1.metadata.continue_.clone().expect("continue token");
    assert_eq!(p1.metadata.remaining_item_count, Some(4));
    cms.create(&PostParams::default(), &cm("c9", "a"))
        .await
        .expect("c9");
    let mut names: Vec<String> = p1
        .items
        .iter()
        .filter_map(|c| c.metadata.name.clone())
        .collect();
    let mut next = Some(token);
    while let Some(t) = next {
        let p = cms
            .list(&ListParams::default().limit(2).continue_token(&t))
            .await
            .expect("page");
        assert_eq!(p.metadata.resource_version, p1.metadata.resource_version);
        names.extend(p.items.iter().filter_map(|c| c.metadata.name.clone()));
        next = p.metadata.continue_.filter(|c| !c.is_empty());
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4", "kube-root-ca.crt"]);
    // Exact reads the state at that revision.
    let rv = p1.metadata.resource_version.clone().expect("rv");
    let exact = cms
        .list(&ListParams::default().at(&rv).matching(VersionMatch::Exact))
        .await
        .expect("exact");
    assert_eq!(exact.items.len(), 6);
    let bad = cms
        .list(
            &ListParams::default()
                .at("abc")
                .matching(VersionMatch::Exact),
        )
        .await
        .expect_err("bad rv");
    assert_eq!(api_code(&bad), 400);

    // deletecollection with a label selector.
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=a"),
    )
    .await
    .expect("deletecollection");
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, ["c3", "c4", "kube-root-ca.crt"]);
    // No deletecollection across all namespaces.
    let all = http::Request::delete("/api/v1/configmaps")
        .body(Vec::new())
        .expect("request");
    let e = client.request_text(all).await.expect_err("405");
    assert_eq!(api_code(&e), 405);

    // Secrets, services and serviceaccounts through typed clients.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let sec: Secret = serde_json::from_value(json!({"metadata": {"name": "s"},
        "stringData": {"token": "abc"}}))
    .expect("secret");
    let got = secrets
        .create(&PostParams::default(), &sec)
        .await
        .expect("secret");
    assert_eq!(got.type_.as_deref(), Some("Opaque"));
    let data = got.data.expect("data");
    assert_eq!(data.get("token").map(|b| b.0.as_slice()), Some(&b"abc"[..]));
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "api"},
        "spec": {"selector": {"app": "a"}, "ports": [{"port": 8080}]}}))
    .expect("svc");
    let got = svcs
        .create(&PostParams::default(), &svc)
        .await
        .expect("svc");
    let spec = got.spec.expect("spec");
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10."))
    );
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    let mut found = false;
    for _ in 0..50 {
        if sas.get_opt("default").await.expect("get sa").is_some() {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "kube-system has a default serviceaccount");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_lists_and_server_side_apply() {
    let s = Server::start();
    let client = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    wait_root_ca(&cms).await;
    cms.create(&PostParams::default(), &cm("one", "x"))
        .await
        .expect("one");
    cms.create(&PostParams::default(), &cm("two", "x"))
        .await
        .expect("two");

    // sendInitialEvents: ADDED for what exists, then the initial-events-end bookmark, then changes.
    let mut raw = cms
        .watch(&WatchParams::streaming_lists(), "")
        .await
        .expect("watch")
        .boxed();
    let mut added = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(10), raw.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("event");
        match ev {
            WatchEvent::Added(c) => added.push(c.metadata.name.unwrap_or_default()),
            WatchEvent::Bookmark(b) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    added.sort();
    assert_eq!(added, ["kube-root-ca.crt", "one", "two"]);
    // Exact at resourceVersion 0 is invalid.
    let req = |q: &str| {
        http::Request::get(format!("/api/v1/namespaces/default/configmaps?{q}"))
            .body(Vec::new())
            .expect("request")
    };
    let e = client
        .request_text(req("resourceVersion=0&resourceVersionMatch=Exact"))
        .await
        .expect_err("exact 0");
    assert_eq!(api_code(&e), 422);
    // sendInitialEvents without allowWatchBookmarks is invalid too.
    let e = client
        .request_text(req(
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
        ))
        .await
        .expect_err("no bookmarks");
    assert_eq!(api_code(&e), 422);

    // kube-runtime's watcher in streaming-list mode.
    let mut w = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut seen_init_done = false;
    let mut init = Vec::new();
    while !seen_init_done {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("watcher event")
            .expect("watcher open")
            .expect("watcher ok");
        match ev {
            watcher::Event::InitApply(c) => init.push(c.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => seen_init_done = true,
            _ => {}
        }
    }
    init.sort();
    assert_eq!(init, ["kube-root-ca.crt", "one", "two"]);

    // Server-side apply: create, conflict, force, removal of fields no longer applied.
    let cfg = |data: serde_json::Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": data});
    let alice = PatchParams::apply("alice");
    cms.patch(
        "ssa",
        &alice,
        &Patch::Apply(cfg(json!({"a": "1", "b": "2"}))),
    )
    .await
    .expect("apply create");
    let e = cms
        .patch(
            "ssa",
            &PatchParams::apply("bob"),
            &Patch::Apply(cfg(json!({"a": "3"}))),
        )
        .await
        .expect_err("conflict");
    assert_eq!(api_code(&e), 409);
    if let kube::Error::Api(st) = &e {
        assert!(st.message.contains("alice"), "{}", st.message);
    }
    cms.patch(
        "ssa",
        &PatchParams::apply("bob").force(),
        &Patch::Apply(cfg(json!({"a": "3"}))),
    )
    .await
    .expect("forced");
    let got = cms
        .patch("ssa", &alice, &Patch::Apply(cfg(json!({}))))
        .await
        .expect("alice drops her fields");
    let data = got.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("3"));
    assert!(!data.contains_key("b"));
    let managers: Vec<String> = got
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"bob".to_string()), "{managers:?}");
    // Applying the value already there makes carol a co-owner without a conflict, and a repeated
    // identical apply writes nothing.
    let carol = PatchParams::apply("carol");
    let c1 = cms
        .patch("ssa", &carol, &Patch::Apply(cfg(json!({"a": "3"}))))
        .await
        .expect("co-own");
    let owners: Vec<String> = c1
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(owners.contains(&"carol".to_string()), "{owners:?}");
    let c2 = cms
        .patch("ssa", &carol, &Patch::Apply(cfg(json!({"a": "3"}))))
        .await
        .expect("no-op");
    assert_eq!(c1.metadata.resource_version, c2.metadata.resource_version);
}
