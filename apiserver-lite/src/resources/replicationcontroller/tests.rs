use serde_json::{Value, json};

use crate::resources::{Kind, by_kind};
use crate::status::FieldError;

fn rc() -> Value {
    json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"template": {"metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}})
}

fn created(mut obj: Value) -> Value {
    by_kind(Kind::ReplicationController).default_on_create(&mut obj);
    obj
}

fn lines(obj: &Value) -> Vec<String> {
    by_kind(Kind::ReplicationController)
        .validate_create(obj)
        .iter()
        .map(FieldError::to_line)
        .collect()
}

#[test]
fn defaults_copy_the_template_labels() {
    let r = created(rc());
    assert_eq!(r["spec"]["selector"], json!({"app": "web", "tier": "fe"}));
    assert_eq!(r["metadata"]["labels"], json!({"app": "web", "tier": "fe"}));
    assert_eq!(r["spec"]["replicas"], 1);
    assert_eq!(r["status"], json!({"replicas": 0}));
    let pod = &r["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert!(lines(&r).is_empty(), "{:?}", lines(&r));
    // Given selector, labels and replicas are kept.
    let mut given = rc();
    given["spec"]["selector"] = json!({"app": "web"});
    given["spec"]["replicas"] = json!(0);
    given["metadata"]["labels"] = json!({"owner": "me"});
    let r = created(given);
    assert_eq!(r["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(r["metadata"]["labels"], json!({"owner": "me"}));
    assert_eq!(r["spec"]["replicas"], 0);
    // No template: nothing to copy, and no template is made up.
    let r = created(json!({"metadata": {"name": "bare", "namespace": "default"}, "spec": {}}));
    assert!(r["spec"].get("template").is_none() && r["spec"].get("selector").is_none());
}

#[test]
fn validation_messages_are_kube_s() {
    let r = created(json!({"metadata": {"name": "bare", "namespace": "default"}, "spec": {}}));
    assert_eq!(
        lines(&r),
        [
            "spec.selector: Required value",
            "spec.template: Required value"
        ]
    );
    let mut r = created(rc());
    r["spec"]["selector"] = json!({"app": "other"});
    assert_eq!(
        lines(&r),
        [
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\", \"tier\":\"fe\"}: selector does not match labels in spec.template"
        ]
    );
    let mut r = created(rc());
    r["spec"]["replicas"] = json!(-1);
    r["spec"]["minReadySeconds"] = json!(-2);
    r["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    r["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
    assert_eq!(
        lines(&r),
        [
            "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicationController is not Supported",
        ]
    );
    let mut r = created(rc());
    r["status"] = json!({"replicas": 1, "readyReplicas": 2});
    assert_eq!(
        lines(&r),
        ["status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas"]
    );
}

#[test]
fn updates_bump_generation_on_spec_changes_and_keep_a_mutable_selector() {
    let def = by_kind(Kind::ReplicationController);
    let old = created(rc());
    let mut new = old.clone();
    new["metadata"]["annotations"] = json!({"a": "b"});
    assert!(!def.bumps_generation(&old, &new));
    new["spec"]["replicas"] = json!(3);
    assert!(def.bumps_generation(&old, &new));
    // Unlike apps/v1, the selector may change (to one the template still matches).
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"app": "web"});
    def.default_on_update(&old, &mut new);
    assert!(def.validate_update(&old, &new).is_empty());
    // The status subresource takes only the status.
    let mut body = old.clone();
    body["spec"]["replicas"] = json!(9);
    body["status"] = json!({"replicas": 2, "readyReplicas": 1});
    let n = def.status_update(&old, &body);
    assert_eq!(n["spec"]["replicas"], 1);
    assert_eq!(n["status"]["readyReplicas"], 1);
}

#[test]
fn table_and_scale_use_the_selector_map() {
    let mut r = created(rc());
    r["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    r["status"] = json!({"replicas": 2, "readyReplicas": 1});
    let cols = super::columns(json!({"name": "Name"}), json!({"name": "Age"}));
    let names: Vec<&str> = cols.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = super::cells(&r, "web".into(), "1d".into());
    assert_eq!(
        cells,
        [
            json!("web"),
            json!(1),
            json!(2),
            json!(1),
            json!("1d"),
            json!("nginx"),
            json!("nginx:1.27"),
            json!("app=web,tier=fe")
        ]
    );
    let scale = crate::scale::scale_of(&r);
    assert_eq!(scale["status"]["selector"], "app=web,tier=fe");
    assert_eq!(scale["spec"]["replicas"], 1);
}

#[test]
fn quota_counts_them_under_the_legacy_name_too() {
    use crate::resources::quota::usage::Evaluator;
    let e = Evaluator::for_resource("replicationcontrollers").expect("tracked");
    assert_eq!(e, Evaluator::Count("", "replicationcontrollers"));
    assert!(e.tracks("replicationcontrollers") && e.tracks("count/replicationcontrollers"));
    let usage = e.usage(&created(rc()));
    assert!(usage.contains_key("replicationcontrollers"), "{usage:?}");
}
