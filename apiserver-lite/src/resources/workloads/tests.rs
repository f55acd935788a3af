use super::validation::validate_strategy;
use super::*;
use crate::resources::{ResourceDef, by_kind};
use crate::status::FieldError;

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}}}})
}

fn created(def: &ResourceDef, mut obj: Value) -> Value {
    def.default_on_create(&mut obj);
    obj
}

fn fields(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

#[test]
fn deployment_defaults() {
    let d = created(by_kind(Kind::Deployment), deployment());
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    // Pod-only defaults stay out of the template.
    assert!(pod.get("tolerations").is_none() && pod.get("enableServiceLinks").is_none());
    let c = &pod["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(d["status"], json!({}));
    // A given strategy is kept; a RollingUpdate without parameters gets them; Recreate gets none.
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
    d["spec"]["replicas"] = json!(0);
    defaults(Kind::Deployment, &mut d);
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(
        d["spec"]["strategy"]["rollingUpdate"],
        json!({"maxSurge": 1, "maxUnavailable": "25%"})
    );
    let mut d = deployment();
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    defaults(Kind::Deployment, &mut d);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    let rs = created(by_kind(Kind::ReplicaSet), json!({"spec": {}}));
    assert_eq!(rs["spec"]["replicas"], 1);
    assert!(rs["spec"].get("strategy").is_none());
    assert_eq!(rs["status"], json!({"replicas": 0}));
}

#[test]
fn valid_objects_pass() {
    for kind in [Kind::Deployment, Kind::ReplicaSet] {
        let def = by_kind(kind);
        let mut obj = deployment();
        obj["kind"] = json!(def.kind);
        let obj = created(def, obj);
        assert_eq!(fields(&def.validate_create(&obj)), Vec::<String>::new());
        assert!(def.validate_update(&obj, &obj).is_empty());
    }
}

#[test]
fn selector_errors() {
    let def = by_kind(Kind::Deployment);
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other", "tier": "x"});
    assert_eq!(
        fields(&def.validate_create(&created(def, d))),
        vec![
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\", \"tier\":\"x\"}: `selector` does not match template `labels`"
        ]
    );
    // A missing selector: required, and it selects nothing.
    let mut d = deployment();
    d["spec"].as_object_mut().map(|s| s.remove("selector"));
    let d = normalize(Kind::Deployment, &d).unwrap_or_default();
    assert!(d["spec"].get("selector").is_none());
    assert_eq!(
        fields(&def.validate_create(&created(def, d))),
        vec![
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        ]
    );
    let mut d = deployment();
    d["spec"]["selector"] = json!({});
    assert_eq!(
        fields(&def.validate_create(&created(def, d))),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
        ]
    );
    let mut d = deployment();
    d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "In"}]});
    let errs = fields(&def.validate_create(&created(def, d)));
    assert_eq!(
        errs[0],
        "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
    );
    assert!(errs[1].contains("invalid label selector"), "{errs:?}");
    // Expressions match.
    let sel = json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]},
        {"key": "canary", "operator": "DoesNotExist"}]});
    let labels = json!({"app": "web"});
    assert!(selector_matches(&sel, labels.as_object()));
    let labels = json!({"app": "web", "canary": "1"});
    assert!(!selector_matches(&sel, labels.as_object()));
}

#[test]
fn spec_errors() {
    let def = by_kind(Kind::Deployment);
    let mut d = deployment();
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["revisionHistoryLimit"] = json!(-2);
    d["spec"]["minReadySeconds"] = json!(10);
    d["spec"]["progressDeadlineSeconds"] = json!(10);
    d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    assert_eq!(
        fields(&def.validate_create(&created(def, d))),
        vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.template.spec.containers[0].image: Required value",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            "spec.revisionHistoryLimit: Invalid value: -2: must be greater than or equal to 0",
            "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds",
        ]
    );
    let mut d = deployment();
    d["spec"]["template"]["spec"] = json!({});
    let errs = fields(&def.validate_create(&created(def, d)));
    assert_eq!(errs, vec!["spec.template.spec.containers: Required value"]);
}

#[test]
fn strategy_errors() {
    let check = |strategy: Value| {
        let mut d = deployment();
        d["spec"]["strategy"] = strategy;
        defaults(Kind::Deployment, &mut d);
        fields(&validate_strategy(&d["spec"]["strategy"]))
    };
    assert_eq!(
        check(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}})
        ),
        vec![
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"
        ]
    );
    assert_eq!(
        check(json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})),
        vec![
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
        ]
    );
    let errs = check(
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%", "maxSurge": "x"}}),
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with(
        "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"x\": a valid percent string"
    ));
    assert_eq!(
        errs[1],
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"
    );
    assert_eq!(
        check(json!({"type": "Blue"})),
        vec![
            "spec.strategy: Unsupported value: \"Blue\": supported values: \"Recreate\", \"RollingUpdate\""
        ]
    );
    assert!(
        check(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        )
        .is_empty()
    );
}

#[test]
fn update_rules() {
    let def = by_kind(Kind::ReplicaSet);
    let old = created(def, deployment());
    let mut new = old.clone();
    new["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
    new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web", "v": "2"});
    assert_eq!(
        fields(&def.validate_update(&old, &new)),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ]
    );
    // Semantically equal selectors are no change.
    let mut same = old.clone();
    same["spec"]["selector"]["matchExpressions"] = json!([]);
    assert!(def.validate_update(&old, &same).is_empty());
    // Status counters.
    let mut st = old.clone();
    st["status"] = json!({"replicas": 1, "readyReplicas": 2, "availableReplicas": -1});
    assert_eq!(
        fields(&def.validate_update(&old, &st)),
        vec![
            "status.availableReplicas: Invalid value: -1: must be greater than or equal to 0",
            "status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas",
        ]
    );
    // Generation: spec changes for both kinds, annotation changes for Deployments only.
    let mut ann = old.clone();
    ann["metadata"]["annotations"] = json!({"a": "b"});
    assert!(!by_kind(Kind::ReplicaSet).bumps_generation(&old, &ann));
    assert!(by_kind(Kind::Deployment).bumps_generation(&old, &ann));
    assert!(def.bumps_generation(&old, &new));
}

/// A status write carries the status and the annotations (kube's status strategies), never the spec.
#[test]
fn status_writes() {
    let def = by_kind(Kind::Deployment);
    let cur = created(def, deployment());
    let mut body = cur.clone();
    body["spec"]["replicas"] = json!(9);
    body["metadata"]["labels"] = json!({"x": "y"});
    body["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
    body["status"] = json!({"observedGeneration": 1, "replicas": 0});
    let n = def.status_update(&cur, &body);
    assert_eq!(n["spec"], cur["spec"]);
    assert_eq!(
        n["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert!(
        n["metadata"].get("labels").is_none(),
        "a Deployment's labels stay"
    );
    assert_eq!(n["status"]["observedGeneration"], 1);
    let rs = by_kind(Kind::ReplicaSet);
    assert_eq!(
        rs.status_update(&cur, &body)["metadata"]["labels"],
        json!({"x": "y"})
    );
    // Other kinds: only the status.
    let pods = by_kind(Kind::Pod);
    assert!(
        pods.status_update(&cur, &body)["metadata"]
            .get("annotations")
            .is_none()
    );
}

#[test]
fn table_rows() {
    let def = by_kind(Kind::Deployment);
    let mut d = created(def, deployment());
    d["spec"]["replicas"] = json!(3);
    if let Some(cs) = d["spec"]["template"]["spec"]["containers"].as_array_mut() {
        cs.push(json!({"name": "side", "image": "busybox"}));
    }
    d["status"] =
        json!({"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2});
    let t = crate::resources::table::table(def, &[d.clone()], None, "None", true);
    let names: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[0], "web");
    assert_eq!(cells[1], "2/3");
    assert_eq!(cells[2], 3);
    assert_eq!(cells[3], 2);
    assert_eq!(cells[5], "nginx,side");
    assert_eq!(cells[6], "nginx:1.27,busybox");
    assert_eq!(cells[7], "app=web");
    let def = by_kind(Kind::ReplicaSet);
    let mut rs = created(def, deployment());
    rs["spec"]["selector"] = json!({"matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["b", "a"]}, {"key": "canary", "operator": "DoesNotExist"}]});
    let t = crate::resources::table::table(def, &[rs], None, "None", true);
    let cols: Vec<(&str, &str)> = t["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        &cols[..4],
        &[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer")
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells[1], 1);
    assert_eq!(cells[2], 0);
    assert_eq!(cells[3], 0);
    // Sorted by key (kube sorts the requirements), not by their text.
    assert_eq!(cells[7], "app=web,!canary,env notin (a,b)");
    assert_eq!(selector_string(Some(&json!({}))), "");
}

#[test]
fn field_selectors() {
    let def = by_kind(Kind::ReplicaSet);
    assert!(def.field_selectors().contains(&"status.replicas"));
    assert_eq!(
        def.field_value(&json!({"status": {}}), "status.replicas"),
        "0"
    );
    assert_eq!(
        def.field_value(&json!({"status": {"replicas": 3}}), "status.replicas"),
        "3"
    );
    assert!(
        !by_kind(Kind::Deployment)
            .field_selectors()
            .contains(&"status.replicas")
    );
}
