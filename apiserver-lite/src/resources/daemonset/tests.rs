use super::*;
use crate::resources::{Kind, by_kind};

fn daemonset() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "busybox:1.35"}]}}}})
}

fn created() -> Value {
    let mut d = daemonset();
    by_kind(Kind::DaemonSet).default_on_create(&mut d);
    d
}

fn lines(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::to_line).collect()
}

#[test]
fn defaults_and_template_generation() {
    let d = created();
    assert_eq!(
        d["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Always");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(template_generation(&d), Some(1));
    assert_eq!(d["status"]["numberReady"], 0);
    assert!(by_kind(Kind::DaemonSet).validate_create(&d).is_empty());
    // OnDelete gets no rollingUpdate.
    let mut on_delete = daemonset();
    on_delete["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    defaults(&mut on_delete);
    assert_eq!(
        on_delete["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );
    // The generation follows template changes only, whatever the client sends.
    let def = by_kind(Kind::DaemonSet);
    let mut same = d.clone();
    same["metadata"]["annotations"] = json!({"other": "x"});
    def.default_on_update(&d, &mut same);
    assert_eq!(template_generation(&same), Some(1));
    let mut changed = d.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    changed["metadata"]["annotations"][TEMPLATE_GENERATION] = json!("7");
    def.default_on_update(&d, &mut changed);
    assert_eq!(template_generation(&changed), Some(2));
    assert!(def.bumps_generation(&d, &changed));
    let mut strategy_only = d.clone();
    strategy_only["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    def.default_on_update(&d, &mut strategy_only);
    assert_eq!(template_generation(&strategy_only), Some(1));
}

#[test]
fn validation_follows_kube() {
    let def = by_kind(Kind::DaemonSet);
    let check = |edit: &dyn Fn(&mut Value)| {
        let mut d = created();
        edit(&mut d);
        lines(&def.validate_create(&d))
    };
    assert_eq!(
        check(&|d| {
            d["spec"].as_object_mut().map(|s| s.remove("selector"));
        }),
        vec![
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"agent\"}: `selector` does not match template `labels`",
        ]
    );
    assert_eq!(
        check(&|d| d["spec"]["selector"] = json!({})),
        vec![
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for daemonset"
        ]
    );
    assert_eq!(
        check(&|d| {
            d["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
            d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(5);
        }),
        vec![
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in DaemonSet is not Supported",
        ]
    );
    assert_eq!(
        check(&|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("")),
        vec!["spec.template.spec.containers[0].image: Required value"]
    );
    let strategy = |s: Value| check(&move |d: &mut Value| d["spec"]["updateStrategy"] = s.clone());
    assert_eq!(
        strategy(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}})
        ),
        vec![
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"
        ]
    );
    assert_eq!(
        strategy(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}})
        ),
        vec![
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        ]
    );
    assert_eq!(
        strategy(
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%", "maxSurge": -1}})
        ),
        vec![
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: \"120%\": must not be greater than 100%",
            "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: -1: may not be set when maxUnavailable is non-zero",
        ]
    );
    assert_eq!(
        strategy(json!({"type": "Blue"})),
        vec![
            "spec.updateStrategy: Unsupported value: \"Blue\": supported values: \"RollingUpdate\", \"OnDelete\""
        ]
    );
    assert!(strategy(json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})).is_empty());
    // Updates: the selector is immutable; status counters are non-negative.
    let old = created();
    let mut new = old.clone();
    new["spec"]["selector"]["matchLabels"]["tier"] = json!("x");
    new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    let errs = lines(&def.validate_update(&old, &new));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("spec.selector: Invalid value: v1.LabelSelector{")
            && errs[0].ends_with("field is immutable")
    );
    let mut st = old.clone();
    st["status"]["numberReady"] = json!(-1);
    assert_eq!(
        lines(&def.validate_update(&old, &st)),
        vec!["status.numberReady: Invalid value: -1: must be greater than or equal to 0"]
    );
}

#[test]
fn table_matches_kube() {
    let def = by_kind(Kind::DaemonSet);
    let mut d = created();
    d["spec"]["template"]["spec"]["nodeSelector"] =
        json!({"kubernetes.io/os": "linux", "disk": "ssd"});
    d["status"] = json!({"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberReady": 1,
        "updatedNumberScheduled": 2, "numberAvailable": 1, "numberMisscheduled": 0});
    let t = crate::resources::table::table(def, &[d], None, "None", true);
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
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cells = &t["rows"][0]["cells"];
    assert_eq!(cells.as_array().map(|c| c.len()), Some(11));
    assert_eq!(
        &cells
            .as_array()
            .map(|c| c[..7].to_vec())
            .unwrap_or_default()[..],
        &[
            json!("agent"),
            json!(3),
            json!(2),
            json!(1),
            json!(2),
            json!(1),
            json!("disk=ssd,kubernetes.io/os=linux")
        ]
    );
    assert_eq!(cells[8], "a");
    assert_eq!(cells[9], "busybox:1.35");
    assert_eq!(cells[10], "app=agent");
    assert_eq!(format_labels(None), "<none>");
    assert_eq!(def.short_names, ["ds"]);
    assert!(def.subresources.contains(&"status") && !def.subresources.contains(&"scale"));
}
