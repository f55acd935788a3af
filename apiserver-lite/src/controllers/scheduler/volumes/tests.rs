//! VolumeBinding's PreFilter and Filter on hand-made views: kube's messages for each way a claim can stop
//! a pod, and which nodes a pod's volumes allow.

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::*;

fn pod(volumes: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "app", "namespace": "default", "uid": "pod-uid"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes}
    }))
    .expect("valid pod")
}

fn node(name: &str, zone: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "zone": zone}}
    }))
    .expect("valid node")
}

fn unbound(class: &str) -> Claim {
    Claim {
        revision: 1,
        class: class.into(),
        volume_name: String::new(),
        deleting: false,
        selected_node: None,
        phase: "Pending".into(),
        bind_completed: false,
        controller_uid: None,
    }
}

fn bound(volume: &str) -> Claim {
    Claim {
        volume_name: volume.into(),
        bind_completed: true,
        phase: "Bound".into(),
        ..unbound("local-path")
    }
}

fn wffc(provisioner: &str) -> Class {
    Class {
        wait_for_first_consumer: true,
        provisioner: provisioner.into(),
        allowed_topologies: Vec::new(),
    }
}

fn cache(claims: Vec<(&str, Claim)>) -> VolumeCache {
    let mut cache = VolumeCache::default();
    for (key, claim) in claims {
        cache.claims.insert(key.into(), claim);
    }
    cache
        .classes
        .insert("local-path".into(), wffc("skiff.io/local-path"));
    cache.classes.insert(
        "fast".into(),
        Class {
            wait_for_first_consumer: false,
            ..wffc("example.com/fast")
        },
    );
    cache
}

fn uses_data() -> Pod {
    pod(json!([{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]))
}

fn uses_scratch() -> Pod {
    pod(json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]))
}

fn prefilter_error(p: &Pod, cache: &VolumeCache) -> Option<String> {
    prefilter(p, &pod_claims(p), cache).err()
}

#[test]
fn claims_of_a_pod_include_generic_ephemeral_volumes() {
    let p = pod(json!([
        {"name": "v", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
    ]));
    let names: Vec<(String, bool)> = pod_claims(&p)
        .into_iter()
        .map(|c| (c.key, c.ephemeral))
        .collect();
    assert_eq!(
        names,
        vec![
            ("default/data".to_string(), false),
            ("default/app-scratch".to_string(), true)
        ]
    );
}

#[test]
fn prefilter_explains_each_blocked_claim() {
    let data = uses_data();
    let cases = [
        (cache(vec![]), "persistentvolumeclaim \"data\" not found"),
        (
            cache(vec![(
                "default/data",
                Claim {
                    deleting: true,
                    ..unbound("local-path")
                },
            )]),
            "persistentvolumeclaim \"data\" is being deleted",
        ),
        (
            cache(vec![(
                "default/data",
                Claim {
                    phase: "Lost".into(),
                    ..bound("pv-1")
                },
            )]),
            "persistentvolumeclaim \"data\" bound to non-existent persistentvolume \"pv-1\"",
        ),
        (
            cache(vec![("default/data", unbound("fast"))]),
            UNBOUND_IMMEDIATE,
        ),
        (
            cache(vec![("default/data", unbound(""))]),
            UNBOUND_IMMEDIATE,
        ),
        (
            cache(vec![("default/data", unbound("no-such-class"))]),
            UNBOUND_IMMEDIATE,
        ),
        (
            // Pre-bound by name but not bound yet: the binder's job, not the scheduler's.
            cache(vec![(
                "default/data",
                Claim {
                    volume_name: "pv-1".into(),
                    ..unbound("local-path")
                },
            )]),
            UNBOUND_IMMEDIATE,
        ),
    ];
    for (cache, want) in cases {
        assert_eq!(prefilter_error(&data, &cache).as_deref(), Some(want));
    }
    let scratch = uses_scratch();
    assert_eq!(
        prefilter_error(&scratch, &cache(vec![])).as_deref(),
        Some(
            "waiting for ephemeral volume controller to create the persistentvolumeclaim \"app-scratch\""
        )
    );
    let foreign = cache(vec![("default/app-scratch", unbound("local-path"))]);
    assert_eq!(
        prefilter_error(&scratch, &foreign).as_deref(),
        Some("PVC default/app-scratch was not created for pod default/app (pod is not owner)")
    );
    let owned = Claim {
        controller_uid: Some("pod-uid".into()),
        ..unbound("local-path")
    };
    assert_eq!(
        prefilter_error(&scratch, &cache(vec![("default/app-scratch", owned)])),
        None
    );
}

fn reasons(p: &Pod, cache: &VolumeCache, n: &Node) -> Vec<String> {
    let plan = prefilter(p, &pod_claims(p), cache).expect("passes prefilter");
    let name = n.metadata.name.as_deref().unwrap_or_default();
    filter(&plan, name, n)
}

#[test]
fn bound_volumes_allow_the_nodes_of_their_affinity() {
    let (a, b) = (node("a", "east"), node("b", "west"));
    let mut c = cache(vec![("default/data", bound("pv-1"))]);
    let data = uses_data();
    assert_eq!(reasons(&data, &c, &a), vec![PV_NOT_EXIST]);
    let by_name = json!({"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}
    ]});
    c.volumes.insert(
        "pv-1".into(),
        Volume {
            affinity: Some(serde_json::from_value(by_name).expect("selector")),
            claim: Some("default/data".into()),
        },
    );
    assert_eq!(reasons(&data, &c, &a), vec![NODE_CONFLICT]);
    assert!(reasons(&data, &c, &b).is_empty());
    c.volumes.insert("pv-1".into(), Volume::default());
    assert!(reasons(&data, &c, &a).is_empty(), "no affinity: any node");
}

#[test]
fn delayed_claims_need_a_provisioner_for_the_node() {
    let (a, b) = (node("a", "east"), node("b", "west"));
    let data = uses_data();
    let mut c = cache(vec![("default/data", unbound("local-path"))]);
    assert!(reasons(&data, &c, &a).is_empty());
    let plan = prefilter(&data, &pod_claims(&data), &c).expect("plan");
    assert_eq!(
        plan.pending_claims(),
        vec![("default/data".to_string(), None)]
    );

    // Already selected for b: only b may take the pod, and nothing is to be written.
    c.claims.insert(
        "default/data".into(),
        Claim {
            selected_node: Some("b".into()),
            revision: 7,
            ..unbound("local-path")
        },
    );
    assert_eq!(reasons(&data, &c, &a), vec![BIND_CONFLICT]);
    assert!(reasons(&data, &c, &b).is_empty());
    let plan = prefilter(&data, &pod_claims(&data), &c).expect("plan");
    assert_eq!(
        plan.pending_claims(),
        vec![("default/data".to_string(), Some(7))]
    );

    // Static volumes only: skiff does not match them per node.
    c.claims
        .insert("default/data".into(), unbound("local-path"));
    c.classes.insert("local-path".into(), wffc(NO_PROVISIONER));
    assert_eq!(reasons(&data, &c, &a), vec![BIND_CONFLICT]);

    // allowedTopologies: zone west only.
    let west = serde_json::from_value(
        json!({"matchLabelExpressions": [{"key": "zone", "values": ["west"]}]}),
    )
    .expect("term");
    c.classes.insert(
        "local-path".into(),
        Class {
            allowed_topologies: vec![west],
            ..wffc("skiff.io/local-path")
        },
    );
    assert_eq!(reasons(&data, &c, &a), vec![BIND_CONFLICT]);
    assert!(reasons(&data, &c, &b).is_empty());
}
