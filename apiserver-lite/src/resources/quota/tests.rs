use serde_json::{Value, json};

use super::usage::{Amount, Evaluator, scope_requirements};
use super::*;

fn quota(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "default"}, "spec": spec})
}

fn fields(errs: &[FieldError]) -> Vec<(String, String)> {
    errs.iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect()
}

#[test]
fn valid_quotas_pass() {
    for spec in [
        json!({"hard": {"pods": "10", "requests.cpu": "1", "limits.memory": "2Gi",
            "count/deployments.apps": "3", "gold.storageclass.storage.k8s.io/requests.storage": "10Gi",
            "requests.nvidia.com/gpu": "2", "services.nodeports": "0"}}),
        json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}),
        json!({"hard": {"cpu": "1"}, "scopes": ["NotBestEffort", "Terminating"]}),
        json!({"hard": {"pods": "5"}, "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}),
    ] {
        let errs = validate(&quota(spec.clone()));
        assert!(errs.is_empty(), "{spec}: {:?}", fields(&errs));
    }
}

#[test]
fn names_quantities_and_scopes_are_checked() {
    let errs = validate(&quota(json!({"hard": {"pods": "-1", "services": "1500m",
        "bogus": "1", "storage": "1Gi"}})));
    assert_eq!(
        fields(&errs),
        [
            (
                "spec.hard[bogus]".to_string(),
                "Invalid value: \"bogus\": must be a standard resource type or fully qualified"
                    .to_string()
            ),
            (
                "spec.hard[bogus]".to_string(),
                "Invalid value: \"bogus\": must be a standard resource for quota".to_string()
            ),
            (
                "spec.hard[pods]".to_string(),
                "Invalid value: \"-1\": must be greater than or equal to 0".to_string()
            ),
            (
                "spec.hard[services]".to_string(),
                "Invalid value: \"1500m\": must be an integer".to_string()
            ),
            (
                "spec.hard[storage]".to_string(),
                "Invalid value: \"storage\": must be a standard resource for quota".to_string()
            ),
        ]
    );
    // BestEffort tracks only pods; BestEffort and NotBestEffort conflict.
    let errs = validate(&quota(
        json!({"hard": {"cpu": "1"}, "scopes": ["BestEffort"]}),
    ));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0]
            .message
            .ends_with("unsupported scope applied to resource")
    );
    let errs = validate(&quota(
        json!({"hard": {"pods": "1"}, "scopes": ["BestEffort", "NotBestEffort"]}),
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.ends_with("conflicting scopes"))
    );
    let errs = validate(&quota(
        json!({"hard": {"pods": "1"}, "scopes": ["Weekend"]}),
    ));
    assert!(
        errs[0].message.ends_with("unsupported scope"),
        "{:?}",
        fields(&errs)
    );
    let errs = validate(&quota(
        json!({"hard": {"pods": "1"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "Terminating", "operator": "In", "values": ["x"]},
        {"scopeName": "PriorityClass", "operator": "In"}]}}),
    ));
    let f = fields(&errs);
    assert!(
        f.iter()
            .any(|(p, m)| p == "spec.scopeSelector.matchExpressions.operator"
                && m.contains("must be 'Exist' only operator")),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|(p, _)| p == "spec.scopeSelector.matchExpressions.values"),
        "{f:?}"
    );
}

#[test]
fn status_is_dropped_on_create_and_validated() {
    let mut q = quota(json!({"hard": {"pods": "1"}}));
    q["status"] = json!({"hard": {"pods": "1"}, "used": {"pods": "7"}});
    prepare_create(&mut q);
    assert!(q.get("status").is_none());
    q["status"] = json!({"used": {"pods": "-2"}});
    assert_eq!(validate(&q)[0].field, "status.used[pods]");
}

#[test]
fn table_splits_requests_and_limits() {
    let mut q = quota(
        json!({"hard": {"pods": "10", "requests.cpu": "1", "limits.cpu": "2",
        "limits.memory": "1Gi"}}),
    );
    q["status"] = json!({"hard": {"pods": "10", "requests.cpu": "1", "limits.cpu": "2",
        "limits.memory": "1Gi"}, "used": {"pods": "1", "requests.cpu": "100m"}});
    let row = cells(&q, "q".into(), "5s".into());
    assert_eq!(
        row,
        [
            json!("q"),
            json!("5s"),
            json!("pods: 1/10, requests.cpu: 100m/1"),
            json!("limits.cpu: 0/2, limits.memory: 0/1Gi")
        ]
    );
}

#[test]
fn amounts_print_like_kube() {
    for (text, want) in [
        ("1", "1"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("0.1", "100m"),
        ("2000", "2k"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("0", "0"),
    ] {
        let a = Amount::parse(text).expect(text);
        assert_eq!(a.text(), want, "{text}");
    }
    let sum = usage::add(
        &[("memory".to_string(), Amount::parse("512Mi").expect("q"))].into(),
        &[("memory".to_string(), Amount::parse("512Mi").expect("q"))].into(),
    );
    assert_eq!(sum["memory"].text(), "1Gi");
}

#[test]
fn pod_usage_counts_containers_init_containers_and_overhead() {
    let pod = json!({"spec": {
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                "limits": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
        "initContainers": [
            {"name": "init", "resources": {"requests": {"cpu": "1"}}}],
        "overhead": {"cpu": "10m"}}});
    let u = usage::to_json(&Evaluator::Pods.usage(&pod));
    assert_eq!(
        u,
        json!({"pods": "1", "count/pods": "1", "cpu": "1010m", "requests.cpu": "1010m",
            "memory": "64Mi", "requests.memory": "64Mi", "limits.cpu": "210m"})
    );
    assert!(!usage::best_effort(&pod));
    let terminal = json!({"status": {"phase": "Succeeded"}});
    assert!(!Evaluator::Pods.counts(&terminal, 0));
    let gone = json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:30Z",
        "deletionGracePeriodSeconds": 30}});
    let at = "2024-01-01T00:01:00Z"
        .parse::<jiff::Timestamp>()
        .expect("time")
        .as_second();
    assert!(Evaluator::Pods.counts(&gone, at));
    assert!(!Evaluator::Pods.counts(&gone, at + 1));
}

#[test]
fn services_claims_and_generic_counts() {
    let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
    assert_eq!(
        usage::to_json(&Evaluator::Services.usage(&svc)),
        json!({"services": "1", "count/services": "1", "services.nodeports": "2",
            "services.loadbalancers": "0"})
    );
    let pvc = json!({"spec": {"storageClassName": "gold",
        "resources": {"requests": {"storage": "1Gi"}}}});
    assert_eq!(
        usage::to_json(&Evaluator::Claims.usage(&pvc)),
        json!({"persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1",
            "requests.storage": "1Gi",
            "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
            "gold.storageclass.storage.k8s.io/requests.storage": "1Gi"})
    );
    assert_eq!(
        Evaluator::for_resource("count/deployments.apps"),
        Some(Evaluator::Count("apps", "deployments"))
    );
    assert_eq!(Evaluator::for_resource("count/pods"), Some(Evaluator::Pods));
    assert_eq!(Evaluator::for_resource("count/widgets.example.com"), None);
    assert!(Evaluator::Claims.tracks("gold.storageclass.storage.k8s.io/requests.storage"));
}

#[test]
fn pod_scopes() {
    let q = quota(json!({"hard": {"pods": "1"}, "scopes": ["Terminating"],
        "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["low"]}]}}));
    let sel = scope_requirements(&q);
    assert_eq!(sel.len(), 2);
    let pod = |deadline: Value, class: &str| {
        json!({"spec": {"activeDeadlineSeconds": deadline, "priorityClassName": class,
            "containers": [{"name": "c"}]}})
    };
    assert!(Evaluator::Pods.in_scopes(&sel, &pod(json!(30), "high")));
    assert!(!Evaluator::Pods.in_scopes(&sel, &pod(json!(30), "low")));
    assert!(!Evaluator::Pods.in_scopes(&sel, &pod(Value::Null, "high")));
    assert!(!Evaluator::Services.in_scopes(&sel, &json!({})));
}
