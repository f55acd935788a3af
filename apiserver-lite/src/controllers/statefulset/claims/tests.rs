use super::*;

fn set(when_deleted: &str, when_scaled: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "set-uid"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": when_deleted, "whenScaled": when_scaled},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            "volumeClaimTemplates": [
                {"metadata": {"name": "data", "labels": {"tier": "db", "app": "other"},
                    "annotations": {"backup": "daily"}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem",
                    "resources": {"requests": {"storage": "1Gi"}}},
                 "status": {"phase": "Pending"}},
                {"metadata": {"name": "logs"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                    "resources": {"requests": {"storage": "2Gi"}}}}]}})
}

fn set_ref() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid",
        "controller": true, "blockOwnerDeletion": true})
}

fn pod_ref() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "pod-uid",
        "controller": true, "blockOwnerDeletion": true})
}

fn claim_with(refs: Value) -> Value {
    json!({"metadata": {"name": "data-web-1", "ownerReferences": refs}})
}

const POD: PodRef = PodRef {
    name: "web-1",
    uid: "pod-uid",
};

#[test]
fn claims_are_named_and_labelled_after_the_set() {
    let s = set("Retain", "Retain");
    assert_eq!(claim_names(&s, 3), ["data-web-3", "logs-web-3"]);
    let t = templates(&s);
    let data = new_claim(&s, t[0], 0);
    assert_eq!(data["metadata"]["name"], "data-web-0");
    assert_eq!(data["metadata"]["namespace"], "default");
    // The set's matchLabels win over the template's.
    assert_eq!(
        data["metadata"]["labels"],
        json!({"tier": "db", "app": "web"})
    );
    assert_eq!(data["metadata"]["annotations"], json!({"backup": "daily"}));
    assert_eq!(data["spec"]["resources"]["requests"]["storage"], "1Gi");
    assert!(data.get("status").is_none());
    // No class unless the template names one; no owner with Retain.
    assert!(data["spec"].get("storageClassName").is_none());
    assert!(data["metadata"].get("ownerReferences").is_none());
    let logs = new_claim(&s, t[1], 0);
    assert_eq!(logs["spec"]["storageClassName"], "fast");
    assert_eq!(logs["metadata"]["labels"], json!({"app": "web"}));
    // whenDeleted: Delete → created with the set as controller.
    let d = set("Delete", "Retain");
    let claim = new_claim(&d, templates(&d)[0], 0);
    assert_eq!(claim["metadata"]["ownerReferences"], json!([set_ref()]));
    let d = set("Retain", "Delete");
    assert!(
        new_claim(&d, templates(&d)[0], 0)["metadata"]
            .get("ownerReferences")
            .is_none()
    );
    assert!(is_claim_of("data-web-12", "web", &["data", "logs"]));
    assert!(is_claim_of("logs-web-0", "web", &["data", "logs"]));
    assert!(!is_claim_of("data-web-x", "web", &["data"]));
    assert!(!is_claim_of("data-webs-0", "web", &["data"]));
    assert!(!is_claim_of("data-web-", "web", &["data"]));
}

#[test]
fn pod_volumes_name_the_claims() {
    let s = set("Retain", "Retain");
    let mut pod = json!({"spec": {"volumes": [
        {"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]}});
    add_volumes(&s, &mut pod, 1);
    assert_eq!(
        pod["spec"]["volumes"],
        json!([
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}},
            {"name": "logs", "persistentVolumeClaim": {"claimName": "logs-web-1"}},
            {"name": "cache", "emptyDir": {}}
        ])
    );
    let mut bare = json!({"spec": {}});
    let mut none = set("Retain", "Retain");
    none["spec"]["volumeClaimTemplates"] = json!([]);
    add_volumes(&none, &mut bare, 0);
    assert!(bare["spec"].get("volumes").is_none());
}

#[test]
fn retention_policy_decides_the_owners() {
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "x-uid"});
    let bare = claim_with(json!([other.clone()]));
    // (whenDeleted, whenScaled, scaled down) → the references wanted besides `other`.
    let cases = [
        ("Retain", "Retain", false, vec![]),
        ("Retain", "Retain", true, vec![]),
        ("Delete", "Retain", false, vec![set_ref()]),
        ("Delete", "Retain", true, vec![set_ref()]),
        ("Retain", "Delete", false, vec![]),
        ("Retain", "Delete", true, vec![pod_ref()]),
        ("Delete", "Delete", false, vec![set_ref()]),
        ("Delete", "Delete", true, vec![pod_ref()]),
    ];
    for (deleted, scaled, down, want) in cases {
        let s = set(deleted, scaled);
        let what = format!("{deleted}/{scaled} scaled down {down}");
        let refs = owner_refs(&bare, &s, &POD, down);
        let mut expected = vec![other.clone()];
        expected.extend(want.clone());
        assert_eq!(refs, expected, "{what}");
        assert_eq!(
            owner_up_to_date(&bare, &s, &POD, down),
            want.is_empty(),
            "{what}"
        );
        let fixed = claim_with(Value::Array(refs));
        assert!(owner_up_to_date(&fixed, &s, &POD, down), "{what}");
        // Back to Retain: our references go, others stay.
        let retain = set("Retain", "Retain");
        assert_eq!(owner_refs(&fixed, &retain, &POD, down), vec![other.clone()]);
    }
    // A reference without `controller` is made a controller one.
    let mut loose = set_ref();
    loose["controller"] = json!(false);
    let s = set("Delete", "Retain");
    let claim = claim_with(json!([loose]));
    assert!(!owner_up_to_date(&claim, &s, &POD, false));
    assert_eq!(owner_refs(&claim, &s, &POD, false), [set_ref()]);
}

#[test]
fn foreign_and_stale_owners_are_respected() {
    let s = set("Delete", "Delete");
    // Another controller holds the claim: the set adds nothing and drops its own references.
    let foreign = json!({"apiVersion": "example.com/v1", "kind": "Db", "name": "db", "uid": "db-uid",
        "controller": true});
    let claim = claim_with(json!([foreign.clone()]));
    assert!(owner_up_to_date(&claim, &s, &POD, false));
    assert_eq!(owner_refs(&claim, &s, &POD, true), vec![foreign.clone()]);
    let both = claim_with(json!([foreign.clone(), pod_ref()]));
    assert!(!owner_up_to_date(&both, &s, &POD, true));
    assert_eq!(owner_refs(&both, &s, &POD, true), [foreign]);
    // A reference to an older pod of the same name: left alone, and it blocks a new pod.
    let mut old_pod = pod_ref();
    old_pod["uid"] = json!("old-uid");
    let stale = claim_with(json!([old_pod]));
    assert!(owner_up_to_date(&stale, &s, &POD, false));
    assert!(claim_is_stale(&stale, &s, "web-1"));
    assert!(!claim_is_stale(&stale, &s, "web-2"));
    assert!(!claim_is_stale(&stale, &set("Delete", "Retain"), "web-1"));
    assert!(!claim_is_stale(
        &claim_with(json!([set_ref()])),
        &s,
        "web-1"
    ));
}

#[test]
fn unknown_policies_retain() {
    let s = set("Keep", "Sometimes");
    assert_eq!(
        policy(&s),
        Policy {
            delete_when_deleted: false,
            delete_when_scaled: false
        }
    );
    assert!(policy(&set("Delete", "Delete")).delete_when_scaled);
}
