use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_700_000_000;

fn at(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .expect("time")
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn pdb(spec: Value, status: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default", "generation": 3},
        "spec": spec, "status": status})
}

fn pod(name: &str, ready: bool, owner: Option<(&str, &str, &str)>) -> Value {
    let mut p = json!({"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    if let Some((kind, name, uid)) = owner {
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind,
            "name": name, "uid": uid, "controller": true}]);
    }
    p
}

fn stored(v: Value) -> Stored {
    Stored {
        value: Arc::new(v),
        revision: 1,
    }
}

fn object(name: &str, uid: &str, replicas: i64, owner: Option<(&str, &str)>) -> (Key, Stored) {
    let mut v = json!({"metadata": {"name": name, "namespace": "default", "uid": uid},
        "spec": {"replicas": replicas}});
    if let Some((d_name, d_uid)) = owner {
        v["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1",
            "kind": "Deployment", "name": d_name, "uid": d_uid, "controller": true}]);
    }
    (("default".into(), name.into()), stored(v))
}

struct Fixture {
    rs: BTreeMap<Key, Stored>,
    deploy: BTreeMap<Key, Stored>,
    sts: BTreeMap<Key, Stored>,
    rc: BTreeMap<Key, Stored>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            rs: [
                object("web-abc", "rs1", 4, Some(("web", "d1"))),
                object("solo", "rs2", 2, None),
            ]
            .into_iter()
            .collect(),
            deploy: [object("web", "d1", 5, None)].into_iter().collect(),
            sts: [object("db", "s1", 3, None)].into_iter().collect(),
            rc: [object("legacy", "rc1", 6, None)].into_iter().collect(),
        }
    }
    fn workloads(&self) -> Workloads<'_> {
        Workloads {
            replicasets: &self.rs,
            deployments: &self.deploy,
            statefulsets: &self.sts,
            replicationcontrollers: &self.rc,
        }
    }
}

fn compute_for(pdb: &Value, pods: &[Value]) -> Computed {
    let f = Fixture::new();
    let refs: Vec<&Value> = pods.iter().collect();
    compute(pdb, &refs, &f.workloads(), NOW).expect("compute")
}

fn counts(c: &Computed) -> (i64, i64, i64, i64) {
    let n = |f: &str| c.status[f].as_i64().expect(f);
    (
        n("expectedPods"),
        n("desiredHealthy"),
        n("currentHealthy"),
        n("disruptionsAllowed"),
    )
}

#[test]
fn integer_min_available_counts_selected_pods() {
    let spec = json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}});
    let mut other = pod("other", true, None);
    other["metadata"]["labels"]["app"] = json!("db");
    let two = [pod("a", true, None), pod("b", true, None), other.clone()];
    let c = compute_for(&pdb(spec.clone(), json!({})), &two);
    assert_eq!(counts(&c), (2, 2, 2, 0));
    assert_eq!(c.status["observedGeneration"], 3);
    let cond = &c.status["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("False"),
            &json!("InsufficientPods")
        )
    );
    assert_eq!(c.unmanaged, Vec::<String>::new());

    let three = [
        pod("a", true, None),
        pod("b", true, None),
        pod("c", true, None),
    ];
    let c = compute_for(&pdb(spec.clone(), json!({})), &three);
    assert_eq!(counts(&c), (3, 2, 3, 1));
    assert_eq!(c.status["conditions"][0]["reason"], "SufficientPods");

    // Not ready and terminating pods are not healthy.
    let mut gone = pod("c", true, None);
    gone["metadata"]["deletionTimestamp"] = json!(at(NOW));
    let c = compute_for(
        &pdb(spec, json!({})),
        &[pod("a", true, None), pod("b", false, None), gone],
    );
    assert_eq!(counts(&c), (3, 2, 1, 0));
}

#[test]
fn percentages_and_max_unavailable_use_the_controllers_scale() {
    let sel = json!({"matchLabels": {"app": "web"}});
    // Two pods of a Deployment's ReplicaSet (the Deployment wants 5) and one of a StatefulSet (3).
    let pods = [
        pod("a", true, Some(("ReplicaSet", "web-abc", "rs1"))),
        pod("b", true, Some(("ReplicaSet", "web-abc", "rs1"))),
        pod("c", true, Some(("StatefulSet", "db", "s1"))),
    ];
    let c = compute_for(
        &pdb(json!({"minAvailable": "50%", "selector": sel}), json!({})),
        &pods,
    );
    // expected 5 + 3, desired ceil(50% of 8) = 4, 3 healthy.
    assert_eq!(counts(&c), (8, 4, 3, 0));
    let c = compute_for(
        &pdb(json!({"maxUnavailable": 1, "selector": sel}), json!({})),
        &pods,
    );
    assert_eq!(counts(&c), (8, 7, 3, 0));
    let c = compute_for(
        &pdb(
            json!({"maxUnavailable": "100%", "selector": sel}),
            json!({}),
        ),
        &pods,
    );
    assert_eq!(counts(&c), (8, 0, 3, 3));
    // A ReplicaSet without a Deployment counts with its own scale; an orphan is reported.
    let pods = [
        pod("a", true, Some(("ReplicaSet", "solo", "rs2"))),
        pod("o", true, None),
    ];
    let c = compute_for(
        &pdb(json!({"maxUnavailable": "25%", "selector": sel}), json!({})),
        &pods,
    );
    // expected 2, maxUnavailable ceil(25% of 2) = 1, desired 1, 2 healthy.
    assert_eq!(counts(&c), (2, 1, 2, 1));
    assert_eq!(c.unmanaged, ["o"]);
    // A core/v1 ReplicationController counts with its scale (6): expected 6, desired ceil(50%) = 3.
    let mut rc_pod = pod("r", true, Some(("ReplicationController", "legacy", "rc1")));
    rc_pod["metadata"]["ownerReferences"][0]["apiVersion"] = json!("v1");
    let c = compute_for(
        &pdb(json!({"minAvailable": "50%", "selector": sel}), json!({})),
        &[rc_pod],
    );
    assert_eq!(counts(&c), (6, 3, 1, 0));
    // A controller skiff does not know (or a stale uid) makes the sync fail.
    let f = Fixture::new();
    let bad = pod("x", true, Some(("ReplicaSet", "web-abc", "not-rs1")));
    let err = compute(
        &pdb(json!({"maxUnavailable": 1, "selector": sel}), json!({})),
        &[&bad],
        &f.workloads(),
        NOW,
    )
    .expect_err("unknown controller");
    assert_eq!(err, "found no controllers for pod \"x\"");
}

#[test]
fn disrupted_pods_expire_after_two_minutes_or_when_the_pod_goes() {
    let spec = json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}});
    let recent = at(NOW - 30);
    let old = at(NOW - DELETION_TIMEOUT_SECS - 1);
    let status = json!({"disruptedPods": {"a": recent, "b": old, "gone": recent}});
    let pods = [
        pod("a", true, None),
        pod("b", true, None),
        pod("c", true, None),
    ];
    let c = compute_for(&pdb(spec.clone(), status), &pods);
    // `a` is still expected to go: not healthy, kept, looked at again when its entry expires.
    assert_eq!(c.status["disruptedPods"], json!({"a": recent}));
    assert_eq!(counts(&c), (3, 1, 2, 1));
    assert_eq!(c.recheck_at, Some(NOW - 30 + DELETION_TIMEOUT_SECS));
    // Once the pod is terminating its entry is dropped.
    let mut a = pod("a", true, None);
    a["metadata"]["deletionTimestamp"] = json!(at(NOW));
    let c = compute_for(&pdb(spec, json!({"disruptedPods": {"a": recent}})), &[a]);
    assert!(c.status.get("disruptedPods").is_none());
    assert_eq!(c.recheck_at, None);
}

#[test]
fn selector_meanings_condition_time_and_fail_safe() {
    let pods = [pod("a", true, None)];
    let c = compute_for(&pdb(json!({"minAvailable": 0}), json!({})), &pods);
    assert_eq!(counts(&c), (0, 0, 0, 0), "no selector selects nothing");
    let c = compute_for(
        &pdb(json!({"minAvailable": 0, "selector": {}}), json!({})),
        &pods,
    );
    assert_eq!(counts(&c), (1, 0, 1, 1), "an empty selector selects all");

    // The transition time stays while the condition's status does not change.
    let previous = json!({"conditions": [{"type": "DisruptionAllowed", "status": "True",
        "reason": "SufficientPods", "message": "", "observedGeneration": 3,
        "lastTransitionTime": "2020-01-01T00:00:00Z"}]});
    let c = compute_for(
        &pdb(json!({"minAvailable": 0, "selector": {}}), previous.clone()),
        &pods,
    );
    assert_eq!(
        c.status["conditions"][0]["lastTransitionTime"],
        "2020-01-01T00:00:00Z"
    );

    let status = fail_safe(
        &pdb(
            json!({}),
            json!({"disruptionsAllowed": 2, "observedGeneration": 1}),
        ),
        "boom",
    );
    assert_eq!(status["disruptionsAllowed"], 0);
    assert_eq!(status["conditions"][0]["reason"], "SyncFailed");
    assert_eq!(status["conditions"][0]["message"], "boom");

    let mut s = json!({"disruptionsAllowed": 0, "observedGeneration": 2});
    set_allowed_condition(&mut s);
    assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
    assert_eq!(scaled(&json!("33%"), 10), Ok(4));
    assert!(scaled(&json!("x"), 10).is_err());
}
