//! Tests of eviction admission, ranking, measurement and messages.

use super::*;
use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn pod(requests: &[(&str, &str)], priority: Option<i32>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            priority,
            containers: vec![Container {
                name: "c".into(),
                resources: Some(ResourceRequirements {
                    requests: (!requests.is_empty()).then(|| {
                        requests
                            .iter()
                            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                            .collect()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn admission_under_pressure() {
    let memory = Pressure {
        memory: true,
        ..Default::default()
    };
    let disk = Pressure {
        disk: true,
        ..Default::default()
    };
    let best_effort = pod(&[], None);
    let burstable = pod(&[("memory", "10Mi")], None);
    assert!(admit(&best_effort, Pressure::default()).is_ok());
    let refused = admit(&best_effort, memory).expect_err("BestEffort under memory pressure");
    assert_eq!(refused.reason, "Evicted");
    assert_eq!(
        refused.message,
        "The node had condition: [MemoryPressure]. "
    );
    assert!(admit(&burstable, memory).is_ok());
    let mut tolerant = best_effort.clone();
    if let Some(s) = tolerant.spec.as_mut() {
        s.tolerations = Some(vec![Toleration {
            key: Some("node.kubernetes.io/memory-pressure".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Default::default()
        }]);
    }
    assert!(admit(&tolerant, memory).is_ok());
    assert!(
        admit(&burstable, disk).is_err(),
        "disk pressure refuses all"
    );
    let both = Pressure {
        memory: true,
        disk: true,
        pid: false,
    };
    assert_eq!(
        admit(&burstable, both).map_err(|f| f.message),
        Err("The node had condition: [MemoryPressure, DiskPressure]. ".to_string())
    );
    assert!(admit(&pod(&[], Some(SYSTEM_CRITICAL_PRIORITY)), both).is_ok());
}

#[test]
fn memory_ranking() {
    let c = |uid: &str, priority: i32, request: u64, memory: u64| Candidate {
        uid: uid.into(),
        priority,
        memory_request: request,
        memory,
        ..Default::default()
    };
    let ranked = rank(
        Signal::MemoryAvailable,
        vec![
            c("within-request", 0, 100, 50),
            c("high-priority-over", 10, 0, 500),
            c("over-a-little", 0, 100, 120),
            c("over-a-lot", 0, 0, 300),
        ],
    );
    let order: Vec<&str> = ranked.iter().map(|c| c.uid.as_str()).collect();
    assert_eq!(
        order,
        [
            "over-a-lot",
            "over-a-little",
            "high-priority-over",
            "within-request"
        ]
    );
    let pids = rank(
        Signal::PidAvailable,
        vec![
            Candidate {
                uid: "few".into(),
                pids: 2,
                ..Default::default()
            },
            Candidate {
                uid: "many".into(),
                pids: 40,
                ..Default::default()
            },
        ],
    );
    assert_eq!(pids[0].uid, "many");
}

#[test]
fn bytes_below_a_directory() {
    let root = std::env::temp_dir().join(format!("skiff-dir-bytes-{}", std::process::id()));
    let deep = root.join("a/b/c");
    std::fs::create_dir_all(&deep).expect("mkdir");
    std::fs::write(root.join("one"), [0u8; 10]).expect("write");
    std::fs::write(deep.join("two"), [0u8; 32]).expect("write");
    std::os::unix::fs::symlink("/etc/passwd", root.join("link")).expect("symlink");
    assert_eq!(
        dir_bytes(&root),
        42,
        "files at every depth, symlinks not followed"
    );
    assert_eq!(dir_bytes(&root.join("missing")), 0);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn kubelet_message() {
    let c = Crossed {
        signal: Signal::MemoryAvailable,
        threshold: 100 << 20,
        available: 50 << 20,
    };
    assert_eq!(
        message(&c),
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
    );
    let p = Crossed {
        signal: Signal::PidAvailable,
        threshold: 1000,
        available: 10,
    };
    assert!(
        message(&p).starts_with("The node was low on resource: pids. Threshold quantity: 1000")
    );
}
