//! The disruption controller and the eviction subresource against a real store. There is no agent: the
//! tests play the kubelet by writing pod status (`Running`, `Ready`) through `pods/status`.

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster};
use crate::handlers::Query;
use crate::resources::Kind;

fn pdb(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name}, "spec": spec})
}

fn web_pdb(min_available: i64) -> Value {
    pdb(
        "web",
        json!({"minAvailable": min_available, "selector": {"matchLabels": {"app": "web"}}}),
    )
}

fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

/// `n` pods labelled `app=web`, Running and Ready.
async fn ready_pods(c: &Cluster, names: &[&str]) {
    for name in names {
        c.create(Kind::Pod, pod(name)).await;
        c.mark_ready(name, &crate::controllers::object::now_rfc3339())
            .await;
    }
}

async fn status_of(c: &Cluster, name: &str) -> Value {
    c.get(Kind::PodDisruptionBudget, name)
        .await
        .map(|p| p["status"].clone())
        .unwrap_or(Value::Null)
}

/// Wait until the budget's `(expectedPods, desiredHealthy, currentHealthy, disruptionsAllowed)` are `want`.
async fn wait_counts(c: &Cluster, name: &str, want: (i64, i64, i64, i64)) {
    c.wait(&format!("{name} counts {want:?}"), async |c| {
        let s = status_of(c, name).await;
        let n = |f: &str| s[f].as_i64().unwrap_or(-1);
        (
            n("expectedPods"),
            n("desiredHealthy"),
            n("currentHealthy"),
            n("disruptionsAllowed"),
        ) == want
    })
    .await;
}

async fn evict(c: &Cluster, name: &str) -> Result<Value, crate::status::ApiError> {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"}});
    crate::eviction::evict(&c.api, "default", name, &body, &Query::default(), false).await
}

#[tokio::test]
async fn status_follows_ready_pods_and_generation() {
    let c = cluster().await;
    ready_pods(&c, &["a", "b"]).await;
    c.create(Kind::PodDisruptionBudget, web_pdb(2)).await;
    wait_counts(&c, "web", (2, 2, 2, 0)).await;
    let s = status_of(&c, "web").await;
    assert_eq!(s["observedGeneration"], 1);
    let cond = &s["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("False"),
            &json!("InsufficientPods")
        )
    );

    ready_pods(&c, &["c"]).await;
    wait_counts(&c, "web", (3, 2, 3, 1)).await;
    assert_eq!(
        status_of(&c, "web").await["conditions"][0]["reason"],
        "SufficientPods"
    );

    // A spec change bumps the generation; the controller catches up.
    c.patch(
        Kind::PodDisruptionBudget,
        "web",
        json!({"spec": {"minAvailable": 1}}),
    )
    .await;
    wait_counts(&c, "web", (3, 1, 3, 2)).await;
    assert_eq!(status_of(&c, "web").await["observedGeneration"], 2);
}

#[tokio::test]
async fn eviction_takes_a_disruption_and_refuses_past_the_budget() {
    let c = cluster().await;
    ready_pods(&c, &["a", "b"]).await;
    c.create(Kind::PodDisruptionBudget, web_pdb(2)).await;
    wait_counts(&c, "web", (2, 2, 2, 0)).await;
    let e = evict(&c, "a").await.expect_err("budget exhausted");
    assert_eq!(e.code, 429);
    assert_eq!(
        e.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        e.details.expect("details")["causes"][0]["message"],
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert!(c.get(Kind::Pod, "a").await.is_some(), "pod a survived");

    ready_pods(&c, &["c"]).await;
    wait_counts(&c, "web", (3, 2, 3, 1)).await;
    evict(&c, "a").await.expect("one disruption allowed");
    // The pod has no node, so its deletion is immediate; the budget recorded the eviction.
    let e = evict(&c, "b").await.expect_err("second eviction refused");
    assert_eq!(e.code, 429);
    // The controller drops the entry of the gone pod and counts the two pods left.
    wait_counts(&c, "web", (2, 2, 2, 0)).await;
    c.wait("disruptedPods emptied", async |c| {
        status_of(c, "web").await.get("disruptedPods").is_none()
    })
    .await;
}

#[tokio::test]
async fn pending_unready_and_doubly_covered_pods() {
    let c = cluster().await;
    ready_pods(&c, &["a", "b"]).await;
    c.create(Kind::Pod, pod("pending")).await;
    c.create(Kind::PodDisruptionBudget, web_pdb(2)).await;
    wait_counts(&c, "web", (3, 2, 2, 0)).await;
    // A pending pod goes without touching the budget.
    evict(&c, "pending").await.expect("pending pod evicted");
    assert!(c.get(Kind::Pod, "pending").await.is_none());

    // A running pod that is not Ready, while the budget is met by the others, goes too.
    ready_pods(&c, &["c"]).await;
    let unready = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False"}]}});
    c.api
        .patch(
            crate::resources::by_kind(Kind::Pod),
            Some("default"),
            "c",
            Some("status"),
            crate::patch::PatchType::Merge,
            unready,
            &[],
            &super::opts(),
            false,
        )
        .await
        .expect("mark c unready");
    wait_counts(&c, "web", (3, 2, 2, 0)).await;
    // The delete is guarded by the version judged unready: a concurrent write to the pod (the scheduler's
    // Unschedulable condition) makes it a 429 to retry, as kube's and as kubectl drain does.
    let mut tries = 0;
    while let Err(e) = evict(&c, "c").await {
        tries += 1;
        assert!(e.code == 429 && tries < 5, "unready pod evicted: {e:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Two budgets select the same pod: kube's 500.
    c.create(
        Kind::PodDisruptionBudget,
        pdb(
            "also",
            json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}),
        ),
    )
    .await;
    let e = evict(&c, "a").await.expect_err("two budgets");
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
}

#[tokio::test]
async fn percentages_use_the_deployment_scale() {
    let c = cluster().await;
    c.create(
        Kind::Deployment,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
    )
    .await;
    c.wait("three pods", async |c| c.live_pods().await.len() == 3)
        .await;
    c.ready_all().await;
    c.create(
        Kind::PodDisruptionBudget,
        pdb(
            "web",
            json!({"maxUnavailable": "34%", "selector": {"matchLabels": {"app": "web"}}}),
        ),
    )
    .await;
    // ceil(34% of 3) = 2 may be unavailable.
    wait_counts(&c, "web", (3, 1, 3, 2)).await;
    c.patch(Kind::Deployment, "web", json!({"spec": {"replicas": 4}}))
        .await;
    c.wait("four pods", async |c| c.live_pods().await.len() == 4)
        .await;
    c.ready_all().await;
    wait_counts(&c, "web", (4, 2, 4, 2)).await;
}
