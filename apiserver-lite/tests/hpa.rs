//! HorizontalPodAutoscalers through kubectl 1.32 against the real server: `kubectl autoscale` (which
//! creates an autoscaling/v1 object, in protobuf), the v2 view with kube's defaults and the v1 view of
//! the same object, `kubectl get hpa` and `kubectl describe hpa` before any metrics, a v2 HPA with
//! `behavior` and a memory AverageValue metric, and `kubectl delete hpa`.
//!
//! API-level test: no agent runs, so no pod has metrics; the controller's rounds are tested in
//! `controllers::tests::hpa`.

mod common;

use common::{Server, have, path_str};

const MEMORY_HPA: &str = "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: mem
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
  - type: Resource
    resource:
      name: memory
      target: {type: AverageValue, averageValue: 100Mi}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 60
      policies: [{type: Pods, value: 1, periodSeconds: 30}]
";

/// The table's rows split into columns (cells are separated by at least two spaces).
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect()
        })
        .collect()
}

/// The lines of `text` with runs of spaces collapsed (describe aligns its columns).
fn squeezed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn kubectl_autoscale_get_describe_create_delete() {
    if !have("kubectl") {
        eprintln!("kubectl not installed; skipping");
        return;
    }
    let s = Server::start();
    let resources = s.ok(&["api-resources", "--api-group=autoscaling", "--no-headers"]);
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "horizontalpodautoscalers",
                    "hpa",
                    "autoscaling/v2",
                    "true",
                    "HorizontalPodAutoscaler"
                ]),
        "{resources}"
    );
    s.ok(&["create", "deployment", "web", "--image=nginx"]);
    let out = s.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    assert_eq!(
        out.trim(),
        "horizontalpodautoscaler.autoscaling/web autoscaled"
    );

    let table = rows(&s.ok(&["get", "hpa"]));
    assert_eq!(
        table[0],
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ],
        "{table:?}"
    );
    assert_eq!(
        table[1][..6],
        ["web", "Deployment/web", "cpu: <unknown>/50%", "1", "3", "0"],
        "{table:?}"
    );

    // The stored form is v2: kubectl's v1 target became a cpu Utilization metric.
    let yaml = s.ok(&["get", "hpa", "web", "-o", "yaml"]);
    for line in [
        "apiVersion: autoscaling/v2",
        "  minReplicas: 1",
        "        averageUtilization: 50",
    ] {
        assert!(
            yaml.lines().any(|l| l == line),
            "{line:?} missing in\n{yaml}"
        );
    }
    let v2 = s.ok(&["get", "hpa", "web", "-o", "json"]);
    let v2: serde_json::Value = serde_json::from_str(&v2).expect("json");
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"],
        serde_json::json!({"maxReplicas": 3, "minReplicas": 1,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}),
        "{v2}"
    );
    assert!(
        v2.pointer("/metadata/annotations").is_none(),
        "no conversion annotations in v2: {v2}"
    );
    // kubectl expands a short name to the preferred version (`hpa.v1.autoscaling` reads v2, as against
    // kube): the full resource name keeps the version.
    let yaml = s.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.lines()
            .any(|l| l == "  targetCPUUtilizationPercentage: 50"),
        "{yaml}"
    );
    let v1 = s.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "-o",
        "json",
    ]);
    let v1: serde_json::Value = serde_json::from_str(&v1).expect("json");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50, "{v1}");
    assert_eq!(v1["spec"]["minReplicas"], 1, "{v1}");
    assert!(v1["spec"].get("metrics").is_none(), "{v1}");

    let describe = squeezed(&s.ok(&["describe", "hpa", "web"]));
    for line in [
        "Name: web",
        "Namespace: default",
        "Reference: Deployment/web",
        "Metrics: ( current / target )",
        "resource cpu on pods (as a percentage of request): <unknown> / 50%",
        "Min replicas: 1",
        "Max replicas: 3",
    ] {
        assert!(
            describe.iter().any(|l| l == line),
            "{line:?} missing in\n{}",
            describe.join("\n")
        );
    }

    // A v2 HPA of its own: kube fills the unset behavior rules with its defaults.
    let file = s.write("mem.yaml", MEMORY_HPA);
    assert_eq!(
        s.ok(&["create", "-f", path_str(&file)]).trim(),
        "horizontalpodautoscaler.autoscaling/mem created"
    );
    let mem = s.ok(&["get", "hpa", "mem", "-o", "json"]);
    let mem: serde_json::Value = serde_json::from_str(&mem).expect("json");
    assert_eq!(mem["spec"]["minReplicas"], 1);
    assert_eq!(
        mem["spec"]["behavior"],
        serde_json::json!({
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 1, "periodSeconds": 30}]}}),
        "{mem}"
    );
    let table = rows(&s.ok(&["get", "hpa", "mem"]));
    assert_eq!(
        table[1][..5],
        ["mem", "Deployment/web", "memory: <unknown>/100Mi", "1", "5"],
        "{table:?}"
    );
    // Through v1 the memory metric and the behavior travel in kube's annotations.
    let annotations = s.ok(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "mem",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    let annotations: serde_json::Value = serde_json::from_str(&annotations).expect("json");
    let metrics: serde_json::Value = serde_json::from_str(
        annotations["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .expect("metrics annotation"),
    )
    .expect("metrics JSON");
    assert_eq!(metrics[0]["resource"]["name"], "memory", "{annotations}");
    assert!(
        annotations
            .get("autoscaling.alpha.kubernetes.io/behavior")
            .is_some(),
        "{annotations}"
    );

    // kube's validation messages reach kubectl.
    let bad = s.write(
        "bad.yaml",
        &MEMORY_HPA
            .replace("name: mem", "name: bad")
            .replace("maxReplicas: 5", "maxReplicas: 0"),
    );
    let err = s.fails(&["create", "-f", path_str(&bad)], None);
    assert!(
        err.contains("spec.maxReplicas: Invalid value: 0: must be greater than 0"),
        "{err}"
    );

    assert_eq!(
        s.ok(&["delete", "hpa", "web", "mem"]).trim(),
        "horizontalpodautoscaler.autoscaling \"web\" deleted\nhorizontalpodautoscaler.autoscaling \"mem\" deleted"
    );
    assert_eq!(
        s.ok(&["get", "hpa", "-o", "name"]).trim(),
        "",
        "no HPA is left"
    );
}
