//! Defaults, validation, conversion and table of HorizontalPodAutoscalers.

use serde_json::json;

use super::*;

fn hpa(spec: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn web() -> Value {
    hpa(
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 3}),
    )
}

#[test]
fn defaults_are_kubes() {
    let mut h = web();
    prepare_create(&mut h);
    assert_eq!(h["spec"]["minReplicas"], 1);
    assert_eq!(
        h["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert!(h["spec"].get("behavior").is_none());
    let mut b = web();
    b["spec"]["behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 10}});
    defaults(&mut b);
    assert_eq!(
        b["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        10
    );
    assert_eq!(
        b["spec"]["behavior"]["scaleDown"]["policies"][0]["value"],
        100
    );
    assert_eq!(b["spec"]["behavior"]["scaleUp"], default_scale_up());
}

#[test]
fn validation_messages() {
    let mut h = web();
    h["spec"]["minReplicas"] = json!(0);
    h["spec"]["maxReplicas"] = json!(0);
    let lines: Vec<String> = validate(&h).iter().map(|e| e.to_line()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("spec.minReplicas")
                && l.contains("must be greater than or equal to 1")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("spec.maxReplicas") && l.contains("must be greater than 0")),
        "{lines:?}"
    );
    let mut m = web();
    m["spec"]["metrics"] = json!([{"type": "Resource"}]);
    let lines: Vec<String> = validate(&m).iter().map(|e| e.to_line()).collect();
    assert!(
        lines.iter().any(|l| l.contains("spec.metrics[0].resource")
            && l.contains("must populate information for the given metric source")),
        "{lines:?}"
    );
    let mut ok = web();
    defaults(&mut ok);
    assert!(validate(&ok).is_empty());
}

#[test]
fn v1_round_trip() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
    let v2 = convert::to_v2(&v1);
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    let back = convert::to_v1(&v2);
    assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 50);
    assert!(back["metadata"].get("annotations").is_none());
}

#[test]
fn table_targets() {
    let mut h = web();
    h["spec"]["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 50}}}]);
    assert_eq!(targets(&h), "cpu: <unknown>/50%");
    h["status"] = json!({"currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
        "current": {"averageUtilization": 12}}}]});
    assert_eq!(targets(&h), "cpu: 12%/50%");
    let cells = cells(&h, "web".into(), "1m".into());
    assert_eq!(cells[1], "Deployment/web");
}
