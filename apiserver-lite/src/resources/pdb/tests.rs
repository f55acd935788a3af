use serde_json::{Value, json};

use super::*;

fn pdb(spec: Value) -> Value {
    json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn fields(errs: &[FieldError]) -> Vec<(String, String)> {
    errs.iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect()
}

#[test]
fn valid_budgets_pass() {
    for spec in [
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
        json!({"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}),
        json!({"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}},
               "unhealthyPodEvictionPolicy": "AlwaysAllow"}),
        json!({"maxUnavailable": "100%", "selector": {}}),
        // kube accepts a budget with neither bound (it then protects nothing).
        json!({"selector": {"matchLabels": {"app": "web"}}}),
    ] {
        assert!(validate(&pdb(spec.clone())).is_empty(), "{spec}");
    }
}

#[test]
fn both_bounds_negative_and_bad_percentages_are_refused() {
    let errs = validate(&pdb(json!({"minAvailable": 1, "maxUnavailable": 1})));
    assert_eq!(errs.len(), 1, "{:?}", fields(&errs));
    assert_eq!(errs[0].field, "spec");
    assert!(
        errs[0]
            .message
            .ends_with("minAvailable and maxUnavailable cannot be both set"),
        "{}",
        errs[0].message
    );

    let errs = validate(&pdb(json!({"minAvailable": -1})));
    assert_eq!(
        fields(&errs),
        [(
            "spec.minAvailable".to_string(),
            "Invalid value: -1: must be greater than or equal to 0".to_string()
        )]
    );
    let errs = validate(&pdb(json!({"maxUnavailable": "150%"})));
    assert_eq!(errs[0].field, "spec.maxUnavailable");
    assert!(errs[0].message.contains("must not be greater than 100%"));
    let errs = validate(&pdb(json!({"maxUnavailable": "half"})));
    assert!(
        errs[0].message.contains("a valid percent string"),
        "{:?}",
        fields(&errs)
    );
    let errs = validate(&pdb(json!({"minAvailable": 1.5})));
    assert!(errs[0].message.contains("must be an integer or percentage"));
}

#[test]
fn selector_policy_and_status_are_checked() {
    let errs = validate(&pdb(
        json!({"minAvailable": 1, "selector": {"matchExpressions": [
        {"key": "app", "operator": "Bogus"}]}}),
    ));
    assert!(
        errs.iter().any(|e| e.field.starts_with("spec.selector")),
        "{:?}",
        fields(&errs)
    );
    let errs = validate(&pdb(
        json!({"minAvailable": 1, "unhealthyPodEvictionPolicy": "Never"}),
    ));
    assert_eq!(
        fields(&errs),
        [(
            "spec.unhealthyPodEvictionPolicy".to_string(),
            "Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
                .to_string()
        )]
    );
    let mut obj = pdb(json!({"minAvailable": 1}));
    obj["status"] = json!({"disruptionsAllowed": -1, "currentHealthy": 0, "desiredHealthy": 0,
        "expectedPods": 0});
    assert_eq!(validate(&obj)[0].field, "status.disruptionsAllowed");
}

#[test]
fn create_resets_status_and_normalize_keeps_int_or_string() {
    let mut obj = pdb(json!({"minAvailable": "50%"}));
    obj["status"] = json!({"disruptionsAllowed": 7});
    prepare_create(&mut obj);
    assert_eq!(obj["status"], empty_status());
    let n = normalize(&obj).expect("normalize");
    assert_eq!(n["spec"]["minAvailable"], "50%");
    assert_eq!(n["status"]["expectedPods"], 0);
    let n = normalize(&pdb(json!({"maxUnavailable": 1, "bogus": true}))).expect("normalize");
    assert_eq!(n["spec"], json!({"maxUnavailable": 1}));
}

#[test]
fn table_shows_na_for_the_unset_bound() {
    let mut obj = pdb(json!({"minAvailable": 2}));
    obj["status"] = json!({"disruptionsAllowed": 1});
    assert_eq!(
        cells(&obj, "web".into(), "5s".into()),
        [
            json!("web"),
            json!("2"),
            json!("N/A"),
            json!(1),
            json!("5s")
        ]
    );
    let obj = pdb(json!({"maxUnavailable": "25%"}));
    assert_eq!(
        cells(&obj, "web".into(), "5s".into())[1..4],
        [json!("N/A"), json!("25%"), json!(0)]
    );
    let names: Vec<Value> = columns(json!({"name": "Name"}), json!({"name": "Age"}))
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(
        names,
        [
            "Name",
            "Min Available",
            "Max Unavailable",
            "Allowed Disruptions",
            "Age"
        ]
    );
}
