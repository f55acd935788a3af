use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_a_pod_and_records_the_event() {
    let h = Harness::start();
    h.put("/registry/nodes/worker", node("worker", true, "2"))
        .await;
    h.put(
        "/registry/pods/default/web",
        pod("default", "web", Some("100m")),
    )
    .await;
    let bound = h.wait_bound("/registry/pods/default/web").await;
    assert_eq!(node_name(&bound), Some("worker"));
    let scheduled = condition(&bound, "PodScheduled").expect("PodScheduled condition");
    assert_eq!(scheduled["status"], "True");
    assert!(bound["metadata"].get("resourceVersion").is_none());
    assert_eq!(
        bound["status"]["phase"], "Pending",
        "the rest of the pod is kept"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    let events = loop {
        let events = h.events("default").await;
        if !events.is_empty() || Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["reason"], "Scheduled");
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["message"], "Successfully assigned default/web to worker");
    assert_eq!(e["source"]["component"], "default-scheduler");
    assert_eq!(e["reportingComponent"], "default-scheduler");
    assert_eq!(e["count"], 1);
    assert_eq!(e["involvedObject"]["kind"], "Pod");
    assert_eq!(e["involvedObject"]["apiVersion"], "v1");
    assert_eq!(e["involvedObject"]["name"], "web");
    assert_eq!(e["involvedObject"]["uid"], bound["metadata"]["uid"]);
    let pod_rev = h
        .store
        .get("/registry/pods/default/web")
        .await
        .expect("get")
        .expect("pod")
        .mod_revision;
    assert_eq!(e["involvedObject"]["resourceVersion"], pod_rev.to_string());
    assert!(e["firstTimestamp"].is_string() && e["lastTimestamp"].is_string());
    let name = e["metadata"]["name"].as_str().expect("event name");
    let (prefix, hex) = name.split_once('.').expect("<pod>.<hex>");
    assert_eq!((prefix, hex.len()), ("web", 16));
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_is_reported_once_and_bound_when_a_node_gets_ready() {
    let h = Harness::start();
    h.put("/registry/nodes/n1", node("n1", false, "2")).await;
    h.put("/registry/pods/default/wait", pod("default", "wait", None))
        .await;
    let pending = h
        .wait_for("/registry/pods/default/wait", "Unschedulable", |p| {
            condition(p, "PodScheduled").is_some_and(|c| c["status"] == "False")
        })
        .await;
    let c = condition(&pending, "PodScheduled").expect("condition");
    assert_eq!(c["reason"], "Unschedulable");
    assert_eq!(
        c["message"],
        "0/1 nodes are available: 1 node(s) were not ready."
    );
    // Node updates that change nothing about the verdict must not produce more events.
    for _ in 0..3 {
        h.set_ready("n1", false).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = h.events("default").await;
    assert_eq!(
        events.len(),
        1,
        "one FailedScheduling event per distinct message: {events:?}"
    );
    assert_eq!(events[0]["reason"], "FailedScheduling");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(
        events[0]["message"],
        "0/1 nodes are available: 1 node(s) were not ready."
    );

    h.set_ready("n1", true).await;
    let bound = h.wait_bound("/registry/pods/default/wait").await;
    assert_eq!(
        condition(&bound, "PodScheduled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    h.stop().await;
}

/// kube's PrioritySort: pods that wait together for room are placed highest `spec.priority` first, so the one
/// high-priority pod takes the only room although five lower ones waited with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_pods_are_placed_first() {
    let h = Harness::start();
    h.put("/registry/nodes/n1", node("n1", false, "1")).await;
    let mut names: Vec<(String, i64)> = (0..5).map(|i| (format!("low{i}"), 10)).collect();
    names.insert(2, ("high".to_string(), 1000));
    for (name, priority) in &names {
        let mut p = pod("default", name, Some("600m"));
        p["spec"]["priority"] = json!(priority);
        h.put(&format!("/registry/pods/default/{name}"), p).await;
    }
    for (name, _) in &names {
        h.wait_for(
            &format!("/registry/pods/default/{name}"),
            "Unschedulable",
            |p| condition(p, "PodScheduled").is_some_and(|c| c["status"] == "False"),
        )
        .await;
    }
    h.set_ready("n1", true).await;
    let high = h.wait_bound("/registry/pods/default/high").await;
    assert_eq!(node_name(&high), Some("n1"));
    for (name, _) in names.iter().filter(|(n, _)| n != "high") {
        h.wait_for(
            &format!("/registry/pods/default/{name}"),
            "Insufficient cpu",
            |p| {
                condition(p, "PodScheduled")
                    .is_some_and(|c| c["message"] == "0/1 nodes are available: 1 Insufficient cpu.")
            },
        )
        .await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_respected_and_freed() {
    let h = Harness::start();
    h.put("/registry/nodes/a", node("a", true, "1")).await;
    h.put("/registry/nodes/b", node("b", true, "1")).await;
    for i in 0..4 {
        h.put(
            &format!("/registry/pods/default/p{i}"),
            pod("default", &format!("p{i}"), Some("400m")),
        )
        .await;
    }
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..4 {
        let p = h.wait_bound(&format!("/registry/pods/default/p{i}")).await;
        *per_node
            .entry(node_name(&p).unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_node,
        std::collections::BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 2)])
    );
    h.put(
        "/registry/pods/default/big",
        pod("default", "big", Some("400m")),
    )
    .await;
    let pending = h
        .wait_for("/registry/pods/default/big", "Unschedulable", |p| {
            condition(p, "PodScheduled").is_some_and(|c| c["status"] == "False")
        })
        .await;
    assert_eq!(
        condition(&pending, "PodScheduled").map(|c| c["message"].clone()),
        Some(json!("0/2 nodes are available: 2 Insufficient cpu."))
    );
    // A deleted pod frees its share.
    h.store
        .delete("/registry/pods/default/p0", None)
        .await
        .expect("delete p0");
    h.wait_bound("/registry/pods/default/big").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pods_is_bound_quickly() {
    let h = Harness::start();
    for n in ["n1", "n2", "n3"] {
        h.put(&format!("/registry/nodes/{n}"), node(n, true, "8"))
            .await;
    }
    // Let the controllers list the nodes first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let creates = (0..30).map(|i| {
        let store = h.store.clone();
        async move {
            let value =
                serde_json::to_vec(&pod("default", &format!("burst-{i}"), None)).expect("json");
            store
                .create(&format!("/registry/pods/default/burst-{i}"), value)
                .await
                .expect("create");
        }
    });
    futures::future::join_all(creates).await;
    let mut latencies = Vec::new();
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..30 {
        let p = h
            .wait_bound(&format!("/registry/pods/default/burst-{i}"))
            .await;
        latencies.push(started.elapsed());
        *per_node
            .entry(node_name(&p).unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    let all = started.elapsed();
    eprintln!("30 pods bound in {all:?}; spread {per_node:?}");
    assert!(all < Duration::from_secs(3), "binding 30 pods took {all:?}");
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "pods spread evenly"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_pods_of_other_schedulers_and_deleting_pods() {
    let h = Harness::start();
    h.put("/registry/nodes/n1", node("n1", true, "2")).await;
    let mut other = pod("default", "other", None);
    other["spec"]["schedulerName"] = "my-scheduler".into();
    h.put("/registry/pods/default/other", other).await;
    let mut deleting = pod("default", "deleting", None);
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
    h.put("/registry/pods/default/deleting", deleting).await;
    h.put("/registry/pods/default/mine", pod("default", "mine", None))
        .await;
    h.wait_bound("/registry/pods/default/mine").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    for name in ["other", "deleting"] {
        let p = h
            .get(&format!("/registry/pods/default/{name}"))
            .await
            .expect("pod exists");
        assert_eq!(node_name(&p), None, "{name} must not be scheduled");
        assert!(condition(&p, "PodScheduled").is_none());
    }
    h.stop().await;
}
