use super::*;

use k8s_openapi::api::core::v1::{PersistentVolumeClaimVolumeSource, PodSpec, PodStatus, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const UID: &str = "0b6c3c1e-6f43-4d59-9d0c-3b7f0e4f5a61";

fn uid(n: u8) -> String {
    format!("0b6c3c1e-6f43-4d59-9d0c-3b7f0e4f5a{n:02x}")
}

fn pod(ns: &str, claims: &[&str], phase: Option<&str>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(
                claims
                    .iter()
                    .map(|c| Volume {
                        name: format!("v-{c}"),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: (*c).into(),
                            read_only: None,
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: phase.map(|p| PodStatus {
            phase: Some(p.into()),
            ..Default::default()
        }),
    }
}

#[test]
fn directory_names() {
    let ok = DirName::parse(&format!("pvc-{UID}_default_data-web-0"));
    assert_eq!(
        ok,
        Some(DirName {
            uid: UID.into(),
            namespace: "default".into(),
            claim: "data-web-0".into(),
        })
    );
    assert_eq!(ok.map(|d| d.volume()), Some(format!("pvc-{UID}")));
    assert!(DirName::parse(&format!("pvc-{UID}_kube-system_a.b.c")).is_some());
    for bad in [
        "",
        "pvc-",
        "lost+found",
        &format!("{UID}_default_data"),
        &format!("pvc-{UID}_default"),
        &format!("pvc-{UID}__data"),
        &format!("pvc-{UID}_default_"),
        &format!("pvc-{UID}_default_data_x"),
        &format!("pvc-{UID}_Default_data"),
        &format!("pvc-{UID}_default_.."),
        &format!("pvc-{UID}_default_a/b"),
        &format!("pvc-{UID}_-ns_data"),
        &format!("pvc-{}_default_data", UID.to_uppercase()),
        "pvc-0b6c3c1e6f434d599d0c3b7f0e4f5a61_default_data",
        "pvc-0b6c3c1e-6f43-4d59-9d0c-3b7f0e4f5a6_default_data",
        "pvc-0b6c3c1e-6f43-4d59-9d0c-3b7f0e4f5g61_default_data",
        &format!("pvc-{UID}_{}_data", "n".repeat(64)),
    ] {
        assert_eq!(DirName::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn claims_in_use() {
    let in_use = InUse::default();
    in_use.pod("p1", &pod("default", &["a", "b"], Some("Running")));
    assert_eq!(
        in_use.claims(),
        None,
        "nothing is known before the first listing"
    );
    in_use.mark_synced();
    in_use.pod("p2", &pod("other", &["a"], None));
    in_use.pod("p3", &pod("default", &["done"], Some("Succeeded")));
    let pair = |ns: &str, c: &str| (ns.to_string(), c.to_string());
    assert_eq!(
        in_use.claims(),
        Some(BTreeSet::from([
            pair("default", "a"),
            pair("default", "b"),
            pair("other", "a")
        ]))
    );
    in_use.unknown("orphan");
    assert_eq!(
        in_use.claims(),
        None,
        "a pod of unknown spec may use anything"
    );
    in_use.remove("orphan");
    in_use.remove("p1");
    in_use.pod("p2", &pod("other", &["a"], Some("Failed")));
    assert_eq!(in_use.claims(), Some(BTreeSet::new()));
}

/// What the fake API server was asked, and a lookup answering from a table (404 when absent).
fn answers(
    table: &[(String, Lookup)],
) -> (
    Arc<Mutex<Vec<String>>>,
    impl Fn(String) -> std::future::Ready<Lookup> + use<>,
) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let table: HashMap<String, Lookup> = table.iter().cloned().collect();
    let seen = asked.clone();
    let lookup = move |name: String| {
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        std::future::ready(table.get(&name).cloned().unwrap_or(Lookup::Gone))
    };
    (asked, lookup)
}

#[tokio::test]
async fn sweep_removes_only_unused_directories_of_deleted_volumes() {
    let base = std::env::temp_dir().join(format!("skiff-storage-gc-{}", uuid::Uuid::new_v4()));
    let root = base.join("storage");
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(outside.join("keep"), "x").unwrap_or_else(|e| panic!("{e}"));
    let dir = |n: u8, claim: &str| root.join(format!("pvc-{}_default_{claim}", uid(n)));
    let gone = dir(1, "gone");
    std::fs::create_dir_all(gone.join("sub")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(gone.join("sub/file"), "data").unwrap_or_else(|e| panic!("{e}"));
    // A link inside a removed directory goes with it; what it points to stays.
    std::os::unix::fs::symlink(&outside, gone.join("link")).unwrap_or_else(|e| panic!("{e}"));
    for (n, claim) in [(2, "exists"), (3, "forbidden"), (4, "used")] {
        std::fs::create_dir_all(dir(n, claim)).unwrap_or_else(|e| panic!("{e}"));
    }
    // Not directories of their own, or not of the provisioner's shape: never looked at.
    std::os::unix::fs::symlink(&outside, dir(5, "link")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir(6, "file"), "").unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(root.join("lost+found")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(root.join(format!("pvc-{}", uid(7)))).unwrap_or_else(|e| panic!("{e}"));

    let in_use = InUse::default();
    in_use.pod("p", &pod("default", &["used"], Some("Running")));
    let (asked, lookup) = answers(&[
        (format!("pvc-{}", uid(2)), Lookup::Keep("exists".into())),
        (
            format!("pvc-{}", uid(3)),
            Lookup::Keep("403 Forbidden".into()),
        ),
    ]);
    // Before the pod manager has listed the node's pods nothing is asked or removed.
    assert!(sweep(&root, &in_use, &lookup).await.is_empty());
    assert!(asked.lock().unwrap_or_else(|e| e.into_inner()).is_empty());

    in_use.mark_synced();
    let removed = sweep(&root, &in_use, &lookup).await;
    assert_eq!(removed, vec![gone.clone()]);
    assert!(!gone.exists());
    assert!(outside.join("keep").exists());
    for (n, claim) in [(2, "exists"), (3, "forbidden"), (4, "used")] {
        assert!(dir(n, claim).is_dir(), "{claim} kept");
    }
    assert!(dir(5, "link").is_symlink());
    assert!(dir(6, "file").is_file());
    assert!(root.join("lost+found").is_dir());
    let mut asked = asked.lock().unwrap_or_else(|e| e.into_inner()).clone();
    asked.sort();
    assert_eq!(
        asked,
        vec![
            format!("pvc-{}", uid(1)),
            format!("pvc-{}", uid(2)),
            format!("pvc-{}", uid(3))
        ],
        "only unused directories of the right shape are looked up"
    );

    // The pod is gone: its claim's directory goes at the next pass.
    in_use.remove("p");
    assert_eq!(sweep(&root, &in_use, &lookup).await, vec![dir(4, "used")]);

    // No storage dir at all: nothing to do.
    std::fs::remove_dir_all(&base).unwrap_or_else(|e| panic!("{e}"));
    assert!(sweep(&root, &in_use, &lookup).await.is_empty());
}

#[test]
fn only_a_not_found_about_the_volume_counts() {
    // As the API server sends it.
    let status = |code: u16, reason: &str, name: Option<&str>| -> kube::core::Status {
        let mut j = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "code": code, "reason": reason, "message": "m"});
        if let Some(n) = name {
            j["details"] = serde_json::json!({"name": n, "kind": "persistentvolumes"});
        }
        serde_json::from_value(j).unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(is_gone(&status(404, "NotFound", Some("pvc-1")), "pvc-1"));
    assert!(!is_gone(&status(404, "NotFound", Some("pvc-2")), "pvc-1"));
    assert!(!is_gone(&status(404, "NotFound", None), "pvc-1"));
    assert!(!is_gone(&status(403, "Forbidden", Some("pvc-1")), "pvc-1"));
}
