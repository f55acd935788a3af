//! The horizontal pod autoscaler against a real store, with the Deployment and ReplicaSet controllers
//! running. The tests play the kubelet (pods Ready through `pods/status`) and the metrics scraper (usage
//! put into the `MetricsStore`), and run the autoscaler's rounds themselves (`sync_all`) instead of
//! waiting for its 15 s period.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::replicaset::{Cluster, is_ready};
use super::*;
use crate::controllers::bootstrap;
use crate::controllers::hpa::Controller;
use crate::handlers::Api;
use crate::metrics::{ContainerUsage, MetricsStore, PodUsage};
use crate::resources::Kind;

struct Autoscaling {
    c: Cluster,
    metrics: Arc<MetricsStore>,
    hpa: Controller,
}

/// The controllers (their own autoscaler reads the same metrics) and an autoscaler the test drives.
async fn autoscaling() -> Autoscaling {
    let dir = TempDir::new();
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&dir.path().join("store.redb")).expect("open store"));
    bootstrap(store.as_ref()).await.expect("bootstrap");
    let metrics = Arc::new(MetricsStore::default());
    let mut cfg = config();
    cfg.metrics = metrics.clone();
    let api = Api::new(store.clone());
    let hpa = Controller::new(store.clone(), metrics.clone());
    let harness = Harness::start_unelected(store, dir, cfg, Duration::from_secs(40));
    Autoscaling {
        c: Cluster { harness, api },
        metrics,
        hpa,
    }
}

/// A Deployment `web` of `replicas` pods whose container `c` requests `cpu` (none: `None`).
fn deployment(replicas: i64, cpu: Option<&str>) -> Value {
    let resources = match cpu {
        Some(cpu) => json!({"requests": {"cpu": cpu, "memory": "64Mi"}}),
        None => json!({"requests": {"memory": "64Mi"}}),
    };
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx",
                                                       "resources": resources}]}}}})
}

/// An autoscaling/v2 HPA `web` on the Deployment: cpu at `percent` % of requests, 1..=`max`.
fn hpa(percent: i64, max: i64, behavior: Option<Value>) -> Value {
    let mut h = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": max,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                     "target": {"type": "Utilization", "averageUtilization": percent}}}]}});
    if let Some(b) = behavior {
        h["spec"]["behavior"] = b;
    }
    h
}

impl Autoscaling {
    /// Wait for `n` live pods, mark them Ready, and put `millicores` of use for each into the metrics.
    async fn pods_using(&self, n: usize, millicores: u64) -> Vec<String> {
        self.c
            .wait(&format!("{n} pods"), async |c| {
                c.live_pods().await.len() == n
            })
            .await;
        self.c.ready_all().await;
        self.c
            .wait("pods Ready", async |c| {
                c.live_pods().await.iter().all(is_ready)
            })
            .await;
        let mut names = Vec::new();
        for pod in self.c.live_pods().await {
            let name = pod["metadata"]["name"].as_str().expect("name").to_string();
            self.metrics.set_pod(
                "default",
                &name,
                PodUsage {
                    timestamp: SystemTime::now(),
                    window: Duration::from_secs(15),
                    containers: vec![ContainerUsage {
                        name: "c".into(),
                        cpu_nanocores: millicores * 1_000_000,
                        memory_bytes: 32 << 20,
                    }],
                },
            );
            names.push(name);
        }
        names
    }

    async fn sync(&mut self) {
        self.hpa.sync_all().await.expect("sync");
    }

    async fn replicas(&self) -> i64 {
        let d = self.c.get(Kind::Deployment, "web").await.expect("web");
        d["spec"]["replicas"].as_i64().expect("replicas")
    }

    async fn status(&self) -> Value {
        let h = self
            .c
            .get(Kind::HorizontalPodAutoscaler, "web")
            .await
            .expect("hpa");
        h["status"].clone()
    }
}

fn condition(status: &Value, type_: &str) -> (String, String, String) {
    let c = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"));
    let f = |k: &str| c[k].as_str().unwrap_or("").to_string();
    (f("status"), f("reason"), f("message"))
}

#[tokio::test]
async fn scales_up_to_max_on_high_cpu_and_reports_status() {
    let mut a = autoscaling().await;
    a.c.create(Kind::Deployment, deployment(1, Some("100m")))
        .await;
    a.pods_using(1, 150).await;
    a.c.create(Kind::HorizontalPodAutoscaler, hpa(50, 3, None))
        .await;
    a.sync().await;
    assert_eq!(a.replicas().await, 3, "150 % of 50 % → 3 pods (max 3)");
    let s = a.status().await;
    assert_eq!(s["currentReplicas"], 1);
    assert_eq!(s["desiredReplicas"], 3);
    assert_eq!(s["observedGeneration"], 1);
    assert!(s["lastScaleTime"].is_string(), "{s}");
    assert_eq!(
        s["currentMetrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 150, "averageValue": "150m"}}}])
    );
    assert_eq!(
        condition(&s, "AbleToScale"),
        (
            "True".into(),
            "SucceededRescale".into(),
            "the HPA controller was able to update the target scale to 3".into()
        )
    );
    assert_eq!(
        condition(&s, "ScalingActive").1,
        "ValidMetricFound".to_string()
    );
    assert_eq!(
        condition(&s, "ScalingActive").2,
        "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
    );
    assert_eq!(
        condition(&s, "ScalingLimited"),
        (
            "False".into(),
            "DesiredWithinRange".into(),
            "the desired count is within the acceptable range".into()
        )
    );
    assert_eq!(
        a.c.reasons("SuccessfulRescale").await,
        ["New size: 3; reason: cpu resource utilization (percentage of request) above target"]
    );

    // The new pods run at the same use: 3 × 150 % wants 9, capped by max.
    a.pods_using(3, 150).await;
    a.sync().await;
    assert_eq!(a.replicas().await, 3);
    let s = a.status().await;
    assert_eq!(
        (&s["currentReplicas"], &s["desiredReplicas"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(
        condition(&s, "ScalingLimited"),
        (
            "True".into(),
            "TooManyReplicas".into(),
            "the desired replica count is more than the maximum replica count".into()
        )
    );
    a.c.harness.stop().await;
}

#[tokio::test]
async fn scales_down_after_the_stabilization_window() {
    let mut a = autoscaling().await;
    a.c.create(Kind::Deployment, deployment(3, Some("100m")))
        .await;
    a.pods_using(3, 10).await;
    let behavior = json!({"scaleDown": {"stabilizationWindowSeconds": 1}});
    a.c.create(Kind::HorizontalPodAutoscaler, hpa(50, 5, Some(behavior)))
        .await;
    // The first round remembers the current 3 as a recommendation: no scale-down inside the window.
    a.sync().await;
    assert_eq!(a.replicas().await, 3);
    let s = a.status().await;
    assert_eq!(s["desiredReplicas"], 3);
    assert_eq!(condition(&s, "AbleToScale").1, "ScaleDownStabilized");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    a.sync().await;
    assert_eq!(a.replicas().await, 1, "10 % of 50 % → 1 pod");
    assert_eq!(
        a.c.reasons("SuccessfulRescale").await,
        ["New size: 1; reason: All metrics below target"]
    );
    let h =
        a.c.get(Kind::HorizontalPodAutoscaler, "web")
            .await
            .expect("hpa");
    assert_eq!(
        h["spec"]["behavior"]["scaleDown"]["policies"],
        json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
        "kube's defaults fill the rest of behavior"
    );
    a.c.harness.stop().await;
}

#[tokio::test]
async fn without_metrics_scaling_is_not_active() {
    let mut a = autoscaling().await;
    a.c.create(Kind::Deployment, deployment(1, Some("100m")))
        .await;
    a.c.wait("1 pod", async |c| c.live_pods().await.len() == 1)
        .await;
    a.c.ready_all().await;
    a.c.create(Kind::HorizontalPodAutoscaler, hpa(50, 3, None))
        .await;
    a.sync().await;
    assert_eq!(a.replicas().await, 1);
    let s = a.status().await;
    let why = "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API";
    assert_eq!(
        condition(&s, "ScalingActive"),
        (
            "False".into(),
            "FailedGetResourceMetric".into(),
            format!("the HPA was unable to compute the replica count: {why}")
        )
    );
    assert_eq!(s["currentReplicas"], 1);
    assert_eq!(s["desiredReplicas"], 0, "kube leaves desiredReplicas alone");
    assert_eq!(a.c.reasons("FailedGetResourceMetric").await, [why]);
    assert_eq!(
        a.c.reasons("FailedComputeMetricsReplicas").await,
        [format!(
            "invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {why}"
        )]
    );
    a.c.harness.stop().await;
}

#[tokio::test]
async fn a_pod_without_a_cpu_request_cannot_be_measured() {
    let mut a = autoscaling().await;
    a.c.create(Kind::Deployment, deployment(1, None)).await;
    let pods = a.pods_using(1, 100).await;
    a.c.create(Kind::HorizontalPodAutoscaler, hpa(50, 3, None))
        .await;
    a.sync().await;
    assert_eq!(a.replicas().await, 1);
    let why = format!(
        "failed to get cpu utilization: missing request for cpu in container c of Pod {}",
        pods[0]
    );
    assert_eq!(a.c.reasons("FailedGetResourceMetric").await, [why.as_str()]);
    let s = a.status().await;
    assert_eq!(
        condition(&s, "ScalingActive").2,
        format!("the HPA was unable to compute the replica count: {why}")
    );
    a.c.harness.stop().await;
}

#[tokio::test]
async fn a_target_at_zero_replicas_disables_scaling() {
    let mut a = autoscaling().await;
    a.c.create(Kind::Deployment, deployment(0, Some("100m")))
        .await;
    a.c.create(Kind::HorizontalPodAutoscaler, hpa(50, 3, None))
        .await;
    a.sync().await;
    assert_eq!(a.replicas().await, 0);
    let s = a.status().await;
    assert_eq!(
        condition(&s, "ScalingActive"),
        (
            "False".into(),
            "ScalingDisabled".into(),
            "scaling is disabled since the replica count of the target is zero".into()
        )
    );
    a.c.harness.stop().await;
}
