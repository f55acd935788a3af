use serde_json::{Value, json};

use super::admission::admit_pod;
use super::checks::{ANNOTATION, aggregate, default_pod, validate_claim, validate_pod};
use super::*;
use crate::status::FieldError;

fn range(limits: Value) -> Value {
    let mut lr = json!({"apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "limits", "namespace": "default"}, "spec": {"limits": limits}});
    defaults(&mut lr);
    lr
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

fn pod(containers: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": containers}, "status": {"phase": "Pending", "qosClass": "BestEffort"}})
}

#[test]
fn container_items_are_defaulted_from_max_default_and_min() {
    let lr = range(
        json!([{"type": "Container", "max": {"cpu": "2", "memory": "1024Mi"},
        "min": {"cpu": "0.1"}, "default": {"cpu": "1"}}]),
    );
    let item = &lr["spec"]["limits"][0];
    assert_eq!(item["default"], json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(item["defaultRequest"], json!({"cpu": "1", "memory": "1Gi"}));
    assert_eq!(item["min"], json!({"cpu": "100m"}));
    let lr = range(json!([{"type": "Container", "min": {"cpu": "100m"}}]));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "100m"})
    );
    assert!(lr["spec"]["limits"][0].get("default").is_none());
    // Pod items are not defaulted.
    let lr = range(json!([{"type": "Pod", "max": {"cpu": "2"}}]));
    assert!(lr["spec"]["limits"][0].get("default").is_none());
    assert!(validate(&lr).is_empty());
}

#[test]
fn normalize_reads_numbers_as_quantities() {
    let v = json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "x"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": 2}}]}});
    let n = normalize(&v).expect("normalize");
    assert_eq!(n["spec"]["limits"][0]["max"]["cpu"], "2");
}

#[test]
fn validation_follows_kube() {
    let lr = range(
        json!([{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
        "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "600m"}}]),
    );
    assert_eq!(
        lines(&validate(&lr)),
        [
            r#"spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1"#,
            r#"spec.limits[0].defaultRequest[cpu]: Invalid value: "600m": min value 2 is greater than default request value 600m"#,
            r#"spec.limits[0].defaultRequest[cpu]: Invalid value: "600m": default request value 600m is greater than default limit value 500m"#,
            r#"spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 500m"#,
        ]
    );
    let lr = range(
        json!([{"type": "Container", "max": {"memory": "1Gi"}, "default": {"memory": "2Gi"}}]),
    );
    assert_eq!(
        lines(&validate(&lr)),
        [
            r#"spec.limits[0].defaultRequest[memory]: Invalid value: "2Gi": default request value 2Gi is greater than max value 1Gi"#,
            r#"spec.limits[0].default[memory]: Invalid value: "1Gi": default value 2Gi is greater than max value 1Gi"#,
        ]
    );
    let lr = range(
        json!([{"type": "Pod", "default": {"cpu": "1"}, "max": {"cpu": "1"},
        "min": {"cpu": "500m"}, "maxLimitRequestRatio": {"cpu": "3"}}]),
    );
    assert_eq!(
        lines(&validate(&lr)),
        [
            "spec.limits[0].default: Forbidden: may not be specified when `type` is 'Pod'",
            r#"spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "3": ratio 3 is greater than max/min = 2.000000"#,
        ]
    );
    let lr = range(
        json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "500m"}},
        {"type": "Container"}, {"type": "Node"},
        {"type": "PersistentVolumeClaim", "max": {"cpu": "1"}}]),
    );
    assert_eq!(
        lines(&validate(&lr)),
        [
            r#"spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less than 1"#,
            r#"spec.limits[1].type: Duplicate value: "Container""#,
            r#"spec.limits[2].type: Invalid value: "Node": must be a standard limit type or fully qualified"#,
            "spec.limits[3].limits: Required value: either minimum or maximum storage value is required, but neither was provided",
        ]
    );
    let lr = range(json!([{"type": "Pod", "max": {"storage": "1Gi", "cpu": "x1"}}]));
    let got = lines(&validate(&lr));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("spec.limits[0].max[cpu]: Invalid value: \"x1\": quantities must match")
    );
    assert_eq!(
        got[1],
        r#"spec.limits[0].max[storage]: Invalid value: "storage": must be a standard resource for containers"#
    );
    let ok = range(
        json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}},
        {"type": "Container", "max": {"cpu": "2", "example.com/gpu": "1"}}]),
    );
    assert!(validate(&ok).is_empty(), "{:?}", lines(&validate(&ok)));
}

#[test]
fn pods_get_the_container_defaults_and_the_annotation() {
    let lr = range(
        json!([{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]),
    );
    let mut p = pod(json!([{"name": "nginx", "image": "nginx"},
        {"name": "side", "image": "x", "resources": {"limits": {"cpu": "200m"}, "requests": {"cpu": "200m"}}}]));
    p["spec"]["initContainers"] = json!([{"name": "init", "image": "x"}]);
    assert!(default_pod(&lr, &mut p));
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}})
    );
    assert_eq!(
        p["spec"]["containers"][1]["resources"],
        json!({"limits": {"cpu": "200m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"][ANNOTATION],
        "LimitRanger plugin set: cpu, memory request for container nginx; cpu, memory limit for container nginx; \
         memory request for container side; memory limit for container side; \
         cpu, memory request for init container init; cpu, memory limit for init container init"
    );
    // Nothing left to set: no annotation change, nothing reported.
    let mut again = p.clone();
    assert!(!default_pod(&lr, &mut again));
    assert_eq!(again, p);
}

#[test]
fn admission_recomputes_qos_and_refuses_requests_over_defaulted_limits() {
    let lr = range(json!([{"type": "Container", "default": {"cpu": "1", "memory": "1Gi"}}]));
    let mut p = pod(json!([{"name": "c", "image": "x"}]));
    admit_pod(std::slice::from_ref(&lr), &mut p).expect("admitted");
    assert_eq!(p["status"]["qosClass"], "Guaranteed");
    let mut p = pod(json!([{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}]));
    let err = admit_pod(&[lr], &mut p).expect_err("request over the default limit");
    assert_eq!(err.code, 422);
    assert!(
        err.message
            .contains("spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"),
        "{}",
        err.message
    );
}

#[test]
fn container_and_pod_limits_refuse_with_kube_texts() {
    let lr = range(json!([
        {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"},
         "maxLimitRequestRatio": {"memory": "2"}},
        {"type": "Pod", "max": {"cpu": "1500m"}},
    ]));
    let p = pod(json!([
        {"name": "a", "resources": {"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "0.8", "memory": "1Gi"}, "limits": {"cpu": "800m", "memory": "1Gi"}}},
    ]));
    assert_eq!(
        validate_pod(&lr, &p),
        [
            "minimum cpu usage per Container is 100m, but request is 50m",
            "memory max limit to request ratio per Container is 2, but provided ratio is 10.240000",
            "maximum cpu usage per Pod is 1500m, but limit is 1800m",
        ]
    );
    let p = pod(json!([{"name": "a"}]));
    assert_eq!(
        validate_pod(&lr, &p),
        [
            "minimum cpu usage per Container is 100m.  No request is specified",
            "maximum cpu usage per Container is 1.  No limit is specified",
            "maximum memory usage per Container is 1Gi.  No limit is specified",
            "memory max limit to request ratio per Container is 2, but no request is specified or request is 0",
            "maximum cpu usage per Pod is 1500m.  No limit is specified",
        ]
    );
}

#[test]
fn pod_totals_count_init_containers_and_sidecars_as_kube() {
    let lr = range(json!([{"type": "Pod", "max": {"cpu": "1"}}]));
    let mut p = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "500m"}}}]));
    // A plain init container runs alone: the larger of it and the containers counts.
    p["spec"]["initContainers"] = json!([{"name": "i", "resources": {"limits": {"cpu": "900m"}}}]);
    assert!(validate_pod(&lr, &p).is_empty());
    // A sidecar runs beside the containers: it adds up.
    p["spec"]["initContainers"] = json!([{"name": "s", "restartPolicy": "Always",
        "resources": {"limits": {"cpu": "600m"}}}]);
    assert_eq!(
        validate_pod(&lr, &p),
        ["maximum cpu usage per Pod is 1, but limit is 1100m"]
    );
}

#[test]
fn claims_are_checked_on_their_storage_request() {
    let lr = range(
        json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
    );
    let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    assert_eq!(
        validate_claim(&lr, &claim("500Mi")),
        ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
    );
    assert_eq!(
        validate_claim(&lr, &claim("20Gi")),
        ["maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    );
    assert!(validate_claim(&lr, &claim("5Gi")).is_empty());
}

#[test]
fn messages_aggregate_as_kube() {
    assert_eq!(aggregate(&["a".into()]), "a");
    assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
}
