//! The resourcequota controller and the quota admission against a real store. There is no agent: the
//! tests play the kubelet by writing pod status through `pods/status`.

use serde_json::{Value, json};

use super::replicaset::{Cluster, cluster};
use crate::handlers::DeleteOpts;
use crate::resources::{Kind, by_kind};

fn quota(name: &str, hard: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": name}, "spec": {"hard": hard}})
}

fn pod(name: &str, cpu: Option<&str>) -> Value {
    let resources = match cpu {
        Some(cpu) => json!({"requests": {"cpu": cpu}}),
        None => json!({}),
    };
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "resources": resources}]}})
}

async fn try_create(
    c: &Cluster,
    kind: Kind,
    body: Value,
) -> Result<Value, crate::status::ApiError> {
    c.api
        .create(by_kind(kind), Some("default"), body, &[], &super::opts())
        .await
        .map(|(v, _)| v)
}

/// Wait until the quota's `status.used` is `want`.
async fn wait_used(c: &Cluster, name: &str, want: Value) {
    c.wait(&format!("{name} used {want}"), async |c| {
        c.get(Kind::ResourceQuota, name)
            .await
            .is_some_and(|q| q.pointer("/status/used") == Some(&want))
    })
    .await;
}

async fn delete_pod(c: &Cluster, name: &str) {
    let opts = DeleteOpts {
        grace: Some(0),
        ..DeleteOpts::default()
    };
    c.api
        .delete(by_kind(Kind::Pod), Some("default"), name, &opts, false)
        .await
        .expect("delete");
}

#[tokio::test]
async fn usage_is_computed_charged_and_released() {
    let c = cluster().await;
    c.create(Kind::Pod, pod("before", Some("100m"))).await;
    c.create(
        Kind::Lease,
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "lock"}}),
    )
    .await;
    c.create(
        Kind::ResourceQuota,
        quota(
            "q",
            json!({"pods": "3", "requests.cpu": "1", "count/leases.coordination.k8s.io": "5", "services.loadbalancers": "1"}),
        ),
    )
    .await;
    wait_used(
        &c,
        "q",
        json!({"pods": "1", "requests.cpu": "100m", "count/leases.coordination.k8s.io": "1", "services.loadbalancers": "0"}),
    )
    .await;
    let q = c.get(Kind::ResourceQuota, "q").await.expect("quota");
    assert_eq!(q["status"]["hard"], q["spec"]["hard"]);

    // The admission charges a new pod before it is stored.
    c.create(Kind::Pod, pod("second", Some("400m"))).await;
    let q = c.get(Kind::ResourceQuota, "q").await.expect("quota");
    assert_eq!(q["status"]["used"]["pods"], "2");
    assert_eq!(q["status"]["used"]["requests.cpu"], "500m");

    // A terminal pod no longer counts; a deleted one neither.
    c.api
        .patch(
            by_kind(Kind::Pod),
            Some("default"),
            "before",
            Some("status"),
            crate::patch::PatchType::Merge,
            json!({"status": {"phase": "Succeeded"}}),
            &[],
            &super::opts(),
            false,
        )
        .await
        .expect("status");
    wait_used(
        &c,
        "q",
        json!({"pods": "1", "requests.cpu": "400m", "count/leases.coordination.k8s.io": "1", "services.loadbalancers": "0"}),
    )
    .await;
    delete_pod(&c, "second").await;
    wait_used(
        &c,
        "q",
        json!({"pods": "0", "requests.cpu": "0", "count/leases.coordination.k8s.io": "1", "services.loadbalancers": "0"}),
    )
    .await;

    // A spec change resyncs the status.
    c.patch(
        Kind::ResourceQuota,
        "q",
        json!({"spec": {"hard": {"pods": "7", "requests.cpu": null,
            "count/leases.coordination.k8s.io": null, "services.loadbalancers": null}}}),
    )
    .await;
    c.wait("hard follows spec", async |c| {
        c.get(Kind::ResourceQuota, "q").await.is_some_and(|q| {
            q.pointer("/status/hard/pods") == Some(&json!("7"))
                && q.pointer("/status/used") == Some(&json!({"pods": "0"}))
        })
    })
    .await;
}

#[tokio::test]
async fn admission_refuses_with_kube_texts_and_dry_run_does_not_charge() {
    let c = cluster().await;
    c.create(
        Kind::ResourceQuota,
        quota("q", json!({"pods": "1", "requests.cpu": "1"})),
    )
    .await;
    wait_used(&c, "q", json!({"pods": "0", "requests.cpu": "0"})).await;

    let err = try_create(&c, Kind::Pod, pod("bare", None))
        .await
        .expect_err("no request");
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "pods \"bare\" is forbidden: failed quota: q: must specify requests.cpu for: nginx"
    );

    let mut opts = super::opts();
    opts.dry_run = true;
    c.api
        .create(
            by_kind(Kind::Pod),
            Some("default"),
            pod("dry", Some("1")),
            &[],
            &opts,
        )
        .await
        .expect("dry run");
    let q = c.get(Kind::ResourceQuota, "q").await.expect("quota");
    assert_eq!(q["status"]["used"]["pods"], "0");

    c.create(Kind::Pod, pod("one", Some("600m"))).await;
    let err = try_create(&c, Kind::Pod, pod("two", Some("100m")))
        .await
        .expect_err("over quota");
    assert_eq!(
        err.message,
        "pods \"two\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
    );
    // Kinds the quota does not track are not affected.
    c.create(
        Kind::ConfigMap,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cfg"}}),
    )
    .await;
}

/// The API server's admission reads quotas from its watch-fed cache. A burst of creates outruns the cache
/// (each charge is one watch delivery behind), yet exactly the quota's room is admitted: a stale copy
/// fails its compare-and-swap and a refusal is confirmed against the store.
#[tokio::test]
async fn cached_admission_admits_exactly_the_room_in_a_burst() {
    let c = cluster().await;
    let api = crate::handlers::Api::new(c.api.store.clone())
        .with_caches(crate::prefix_cache::Caches::start(&c.api.store));
    c.create(Kind::ResourceQuota, quota("q", json!({"pods": "3"})))
        .await;
    wait_used(&c, "q", json!({"pods": "0"})).await;
    // Let the cache see the synced quota, so that the burst reads it from there.
    let caches = api.caches.clone().expect("caches");
    c.wait("cache synced", async |_| {
        caches
            .quotas
            .list("/registry/resourcequotas/default/")
            .is_some_and(|l| l.iter().any(|q| q.value.pointer("/status/used").is_some()))
    })
    .await;
    let mut admitted = 0;
    for i in 0..6 {
        let body = pod(&format!("p{i}"), None);
        match api
            .create(
                by_kind(Kind::Pod),
                Some("default"),
                body,
                &[],
                &super::opts(),
            )
            .await
        {
            Ok(_) => admitted += 1,
            Err(e) => assert!(
                e.message
                    .contains("exceeded quota: q, requested: pods=1, used: pods=3"),
                "{}",
                e.message
            ),
        }
    }
    assert_eq!(admitted, 3);
    let q = c.get(Kind::ResourceQuota, "q").await.expect("quota");
    assert_eq!(q["status"]["used"]["pods"], "3");
}
