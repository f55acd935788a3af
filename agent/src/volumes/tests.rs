use super::*;
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, VolumeMount};

fn pod(vols: Vec<Volume>) -> Pod {
    Pod {
        spec: Some(PodSpec {
            volumes: Some(vols),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn empty_dir_and_unsupported() {
    let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
    let p = pod(vec![Volume {
        name: "scratch".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }]);
    let vols = prepare(&dir, &p, &objects::Objects::default())
        .await
        .expect("prepare");
    let path = vols.get("scratch").cloned().unwrap_or_default();
    assert_eq!(path, dir.join("volumes/kubernetes.io~empty-dir/scratch"));
    assert!(path.is_dir());
    let p = pod(vec![Volume {
        name: "s".into(),
        nfs: Some(Default::default()),
        ..Default::default()
    }]);
    let e = prepare(&dir, &p, &objects::Objects::default())
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("volume \"s\": nfs volumes are not supported yet")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The mount check by device: mount roots (`/`, `/proc`) are, plain and missing directories are not. The
/// tmpfs case (mounted, then not after the unmount) is in the root-only tests below.
#[test]
fn mount_point_by_device() {
    assert!(is_mount_point(Path::new("/")));
    assert!(
        is_mount_point(Path::new("/proc")),
        "procfs is mounted on /proc"
    );
    let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
    assert!(!is_mount_point(&dir), "a missing directory is no mount");
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    assert!(!is_mount_point(&dir.join("sub")));
    std::fs::remove_dir_all(&dir).expect("remove");
}

/// Needs root (mounts a tmpfs); fails loudly without it.
#[tokio::test]
async fn memory_empty_dir_is_tmpfs() {
    let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
    let p = pod(vec![Volume {
        name: "mem".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                "8Mi".into(),
            )),
            ..Default::default()
        }),
        ..Default::default()
    }]);
    let vols = prepare(&dir, &p, &objects::Objects::default())
        .await
        .expect("prepare");
    let path = vols.get("mem").cloned().unwrap_or_default();
    assert!(is_mount_point(&path), "tmpfs mounted at {}", path.display());
    prepare(&dir, &p, &objects::Objects::default())
        .await
        .expect("prepare is idempotent");
    assert_eq!(mount_points_below(&dir).len(), 1);
    assert!(unmount_below(&dir).is_empty());
    assert!(!is_mount_point(&path));
    std::fs::remove_dir_all(&dir).expect("pod dir removable");
}

/// Needs root (the secret volume is a tmpfs).
#[tokio::test]
async fn config_map_and_secret_volumes() {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMap, ConfigMapVolumeSource, Secret, SecretVolumeSource,
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
    let mut objs = objects::Objects::default();
    objs.config_maps.insert(
        "cfg".into(),
        Some(ConfigMap {
            data: Some([("a".to_string(), "1".to_string())].into()),
            ..Default::default()
        }),
    );
    objs.secrets.insert(
        "sec".into(),
        Some(Secret {
            data: Some([("pw".to_string(), ByteString(b"x".to_vec()))].into()),
            ..Default::default()
        }),
    );
    let p = pod(vec![
        Volume {
            name: "c".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "cfg".into(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "s".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("sec".into()),
                default_mode: Some(0o400),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]);
    let vols = prepare(&dir, &p, &objs).await.expect("prepare");
    let c = vols.get("c").cloned().unwrap_or_default();
    let s = vols.get("s").cloned().unwrap_or_default();
    assert_eq!(c, dir.join("volumes/kubernetes.io~configmap/c"));
    assert_eq!(
        std::fs::read_to_string(c.join("a")).ok().as_deref(),
        Some("1")
    );
    assert_eq!(
        std::fs::read_to_string(s.join("pw")).ok().as_deref(),
        Some("x")
    );
    let mode = std::fs::metadata(s.join("pw")).map(|m| m.permissions().mode() & 0o777);
    assert_eq!(mode.ok(), Some(0o400));
    assert!(is_mount_point(&s), "secret volume on a tmpfs");
    assert!(!is_mount_point(&c));
    prepare(&dir, &p, &objs).await.expect("prepare again");
    assert_eq!(mount_points_below(&dir).len(), 1);
    let ct = Container {
        name: "x".into(),
        volume_mounts: Some(vec![VolumeMount {
            name: "c".into(),
            mount_path: "/etc/c".into(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let m = mounts(&Pod::default(), &ct, &vols).expect("mounts");
    assert!(m[0].readonly, "configMap volumes are mounted read-only");
    objs.config_maps.insert("cfg".into(), None);
    let e = prepare(&dir, &p, &objs).await.err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("MountVolume.SetUp failed for volume \"c\" : configmap \"cfg\" not found")
    );
    assert_eq!(
        std::fs::read_to_string(c.join("a")).ok().as_deref(),
        Some("1")
    );
    assert!(unmount_below(&dir).is_empty());
    std::fs::remove_dir_all(&dir).expect("pod dir removable");
}

#[test]
fn mounts_and_sub_paths() {
    let vols = HashMap::from([("data".to_string(), PathBuf::from("/v/data"))]);
    let mut c = Container {
        name: "c".into(),
        volume_mounts: Some(vec![VolumeMount {
            name: "data".into(),
            mount_path: "/data".into(),
            read_only: Some(true),
            sub_path: Some("x/y".into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let m = mounts(&Pod::default(), &c, &vols).expect("mounts");
    assert_eq!(
        m,
        vec![BindMount {
            source: "/v/data/x/y".into(),
            destination: "/data".into(),
            readonly: true
        }]
    );
    if let Some(vm) = c.volume_mounts.as_mut() {
        vm[0].sub_path = Some("../etc".into());
    }
    assert!(mounts(&Pod::default(), &c, &vols).is_err());
    if let Some(vm) = c.volume_mounts.as_mut() {
        vm[0].sub_path = None;
        vm[0].name = "nope".into();
    }
    assert!(mounts(&Pod::default(), &c, &vols).is_err());
}

#[tokio::test]
async fn claim_volumes_on_the_host() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource;
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
    let claim_volume = |name: &str, read_only| Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: format!("c-{name}"),
            read_only,
        }),
        ..Default::default()
    };
    let p = pod(vec![
        claim_volume("lp", None),
        claim_volume("hp", Some(true)),
        claim_volume("local", None),
    ]);
    let resolved = |name: &str, source| claims::Resolved {
        claim: format!("c-{name}"),
        volume: format!("pv-{name}"),
        source,
    };
    let (lp, hp, local) = (dir.join("storage/pvc-1"), dir.join("a/b"), dir.join("disk"));
    let mut objs = objects::Objects::default();
    objs.claims.insert(
        "lp".into(),
        resolved(
            "lp",
            claims::Source::HostPath {
                path: lp.display().to_string(),
                type_: "DirectoryOrCreate".into(),
                dir_mode: claims::LOCAL_PATH_DIR_MODE,
            },
        ),
    );
    objs.claims.insert(
        "hp".into(),
        resolved(
            "hp",
            claims::Source::HostPath {
                path: hp.display().to_string(),
                type_: "DirectoryOrCreate".into(),
                dir_mode: claims::DIR_MODE,
            },
        ),
    );
    objs.claims.insert(
        "local".into(),
        resolved(
            "local",
            claims::Source::Local {
                path: local.display().to_string(),
            },
        ),
    );
    // A `local` volume's path must exist: nothing is created for it.
    let e = prepare(&dir, &p, &objs).await.err().map(|e| e.to_string());
    assert_eq!(
        e,
        Some(format!(
            "MountVolume.SetUp failed for volume \"local\" : path {:?} of PersistentVolume pv-local does not exist",
            local.display().to_string()
        ))
    );
    std::fs::create_dir_all(&local).expect("local disk");
    let vols = prepare(&dir, &p, &objs).await.expect("prepare");
    assert_eq!(vols.get("lp"), Some(&lp));
    assert_eq!(vols.get("hp"), Some(&hp));
    assert_eq!(vols.get("local"), Some(&local));
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o7777)
            .ok()
    };
    assert_eq!(
        mode(&lp),
        Some(0o777),
        "local-path's world-writable directory"
    );
    assert_eq!(mode(&hp), Some(0o755));
    assert_eq!(mode(&dir.join("storage")), Some(0o755), "parents get 0755");
    // A container's mounts: read-only when the pod asks for the claim read-only.
    let ct = Container {
        name: "x".into(),
        volume_mounts: Some(
            ["lp", "hp"]
                .iter()
                .map(|n| VolumeMount {
                    name: (*n).into(),
                    mount_path: format!("/{n}"),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    };
    let m = mounts(&p, &ct, &vols).expect("mounts");
    assert_eq!(
        m.iter().map(|b| b.readonly).collect::<Vec<_>>(),
        vec![false, true]
    );
    // A claim volume the worker did not resolve is an error, not an empty mount.
    objs.claims.remove("hp");
    let e = prepare(&dir, &p, &objs).await.err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("volume \"hp\": its claim was not resolved")
    );
    std::fs::remove_dir_all(&dir).expect("temp dir removable");
}
