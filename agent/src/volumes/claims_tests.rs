use super::*;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, LocalVolumeSource, NFSVolumeSource, ObjectReference,
    PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource,
    PersistentVolumeSpec, PodSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

const UID: &str = "0b6c3c1e-6f43-4d59-9d0c-3b7f0e4f5a61";
const ROOT: &str = "/var/lib/skiff/storage";

fn claim(phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            namespace: Some("default".into()),
            uid: Some(UID.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: volume.map(String::from),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(phase.into()),
            ..Default::default()
        }),
    }
}

fn volume(name: &str, claim_uid: Option<&str>, spec: PersistentVolumeSpec) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            claim_ref: claim_uid.map(|u| ObjectReference {
                name: Some("data".into()),
                namespace: Some("default".into()),
                uid: Some(u.into()),
                ..Default::default()
            }),
            ..spec
        }),
        status: None,
    }
}

fn host_path(path: &str, typ: &str) -> PersistentVolumeSpec {
    PersistentVolumeSpec {
        host_path: Some(HostPathVolumeSource {
            path: path.into(),
            type_: Some(typ.into()),
        }),
        ..Default::default()
    }
}

fn provisioned(mut pv: PersistentVolume) -> PersistentVolume {
    pv.metadata.annotations = Some(BTreeMap::from([(
        PROVISIONED_BY.to_string(),
        LOCAL_PATH_PROVISIONER.to_string(),
    )]));
    pv
}

fn pod(volumes: &[(&str, &str, Option<bool>)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            volumes: Some(
                volumes
                    .iter()
                    .map(|(name, claim, ro)| Volume {
                        name: (*name).into(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: (*claim).into(),
                            read_only: *ro,
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

#[test]
fn claims_that_cannot_be_used_yet() {
    let mut deleting = claim("Bound", Some("pv1"));
    deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
    for (c, want) in [
        (deleting, "PVC is being deleted"),
        (claim("Pending", None), "PVC is not bound"),
        (claim("Lost", Some("pv1")), "PVC is not bound"),
        (claim("Bound", None), "PVC has empty pvc.Spec.VolumeName"),
        (
            claim("Bound", Some("")),
            "PVC has empty pvc.Spec.VolumeName",
        ),
    ] {
        assert_eq!(check_claim(&c), Err(want.to_string()));
    }
    assert_eq!(
        check_claim(&claim("Bound", Some("pv1"))),
        Ok((UID.to_string(), "pv1".to_string()))
    );
}

#[test]
fn volumes_bound_elsewhere_are_refused() {
    let root = Path::new(ROOT);
    let pv = volume("pv1", None, host_path("/srv/a", ""));
    assert_eq!(
        check_volume(&pv, UID, root),
        Err("found PV object pv1 but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim".into())
    );
    let pv = volume("pv1", Some("other-uid"), host_path("/srv/a", ""));
    assert_eq!(
        check_volume(&pv, UID, root),
        Err(format!(
            "found PV object pv1 but its pv.Spec.ClaimRef.UID other-uid does not point to claim.UID {UID}"
        ))
    );
}

#[test]
fn sources_and_directory_modes() {
    let root = Path::new(ROOT);
    let own = format!("{ROOT}/pvc-{UID}_default_data");
    let hp = |path: &str, dir_mode| Source::HostPath {
        path: path.into(),
        type_: "DirectoryOrCreate".into(),
        dir_mode,
    };
    // The provisioner's own volume, right under the storage dir: world-writable as local-path makes it.
    let pv = provisioned(volume(
        "pvc-x",
        Some(UID),
        host_path(&own, "DirectoryOrCreate"),
    ));
    assert_eq!(check_volume(&pv, UID, root), Ok(hp(&own, 0o777)));
    // Not provisioned by local-path, or not directly under the storage dir: the kubelet's 0755.
    let pv = volume("pv1", Some(UID), host_path(&own, "DirectoryOrCreate"));
    assert_eq!(check_volume(&pv, UID, root), Ok(hp(&own, 0o755)));
    for path in [
        "/srv/elsewhere",
        ROOT,
        &format!("{ROOT}/a/b"),
        &format!("{ROOT}/../etc"),
    ] {
        let pv = provisioned(volume(
            "pvc-x",
            Some(UID),
            host_path(path, "DirectoryOrCreate"),
        ));
        assert_eq!(check_volume(&pv, UID, root), Ok(hp(path, 0o755)), "{path}");
    }
    let pv = volume(
        "pv-local",
        Some(UID),
        PersistentVolumeSpec {
            local: Some(LocalVolumeSource {
                path: "/mnt/disk1".into(),
                fs_type: None,
            }),
            ..Default::default()
        },
    );
    assert_eq!(
        check_volume(&pv, UID, root),
        Ok(Source::Local {
            path: "/mnt/disk1".into()
        })
    );
    let pv = volume(
        "pv-nfs",
        Some(UID),
        PersistentVolumeSpec {
            nfs: Some(NFSVolumeSource {
                path: "/export".into(),
                server: "nfs.example".into(),
                read_only: None,
            }),
            storage_class_name: Some("nfs".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        check_volume(&pv, UID, root),
        Err("volume source nfs of PersistentVolume pv-nfs is not supported".into())
    );
    let pv = volume("pv-empty", Some(UID), PersistentVolumeSpec::default());
    assert_eq!(
        check_volume(&pv, UID, root),
        Err("PersistentVolume pv-empty has no volume source".into())
    );
}

#[test]
fn directly_under_is_lexical_and_one_level() {
    let root = Path::new("/s");
    assert!(directly_under(Path::new("/s/pvc-1"), root));
    assert!(directly_under(Path::new("/s/pvc-1/"), root));
    assert!(!directly_under(Path::new("/s"), root));
    assert!(!directly_under(Path::new("/s/a/b"), root));
    assert!(!directly_under(Path::new("/s/../s/x"), root));
    assert!(!directly_under(Path::new("s/x"), Path::new("s")));
    assert!(!directly_under(Path::new("/t/x"), root));
}

#[test]
fn read_only_claims_and_the_error_text() {
    let p = pod(&[("a", "c1", Some(true)), ("b", "c2", None)]);
    assert!(read_only(&p, "a"));
    assert!(!read_only(&p, "b"));
    assert!(!read_only(&p, "nope"));
    assert_eq!(
        claim_volumes(&p),
        vec![("a".into(), "c1".into()), ("b".into(), "c2".into())]
    );
    let e = ClaimsError {
        failed: BTreeMap::from([
            (
                "b".to_string(),
                "error processing PVC default/c2: PVC is not bound".to_string(),
            ),
            (
                "a".to_string(),
                "error processing PVC default/c1: PVC is not bound".to_string(),
            ),
        ]),
    };
    assert_eq!(
        e.to_string(),
        "Unable to attach or mount volumes: unmounted volumes=[a b], unattached volumes=[], failed to \
         process volumes=[a b]: error processing PVC default/c1: PVC is not bound; error processing PVC \
         default/c2: PVC is not bound"
    );
}

/// A canned API server: path → (status, JSON body); every request is recorded.
#[derive(Clone)]
struct FakeApi {
    answers: Arc<BTreeMap<String, (u16, serde_json::Value)>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl tower::Service<http::Request<kube::client::Body>> for FakeApi {
    type Response = http::Response<kube::client::Body>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let path = req.uri().path().to_string();
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("{} {path}", req.method()));
        let (code, body) = self.answers.get(&path).cloned().unwrap_or_else(|| {
            let mut parts = path.rsplit('/');
            let (name, resource) = (parts.next(), parts.next());
            let (name, resource) = (name.unwrap_or_default(), resource.unwrap_or_default());
            (
                404,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404,
                    "message": format!("{resource} \"{name}\" not found")}),
            )
        });
        let resp = http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(body.to_string().into_bytes()))
            .unwrap_or_else(|e| panic!("{e}"));
        std::future::ready(Ok(resp))
    }
}

fn fake(answers: Vec<(&str, serde_json::Value)>) -> (kube::Client, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api = FakeApi {
        answers: Arc::new(
            answers
                .into_iter()
                .map(|(p, v)| (p.to_string(), (200, v)))
                .collect(),
        ),
        seen: seen.clone(),
    };
    (kube::Client::new(api, "default"), seen)
}

#[tokio::test]
async fn resolve_gets_each_claim_and_volume_once() {
    let own = format!("{ROOT}/pvc-{UID}_default_data");
    let pvc = serde_json::to_value(claim("Bound", Some("pvc-x"))).unwrap_or_default();
    let pv = serde_json::to_value(provisioned(volume(
        "pvc-x",
        Some(UID),
        host_path(&own, "DirectoryOrCreate"),
    )))
    .unwrap_or_default();
    let (client, seen) = fake(vec![
        (
            "/api/v1/namespaces/default/persistentvolumeclaims/data",
            pvc,
        ),
        ("/api/v1/persistentvolumes/pvc-x", pv),
    ]);
    let p = pod(&[("a", "data", None), ("b", "data", Some(true))]);
    let got = resolve(&client, &p, Path::new(ROOT)).await;
    let want = Resolved {
        claim: "data".into(),
        volume: "pvc-x".into(),
        source: Source::HostPath {
            path: own.clone(),
            type_: "DirectoryOrCreate".into(),
            dir_mode: 0o777,
        },
    };
    assert_eq!(
        got,
        Ok(HashMap::from([
            ("a".to_string(), want.clone()),
            ("b".to_string(), want)
        ]))
    );
    assert_eq!(
        *seen.lock().unwrap_or_else(|e| e.into_inner()),
        vec![
            "GET /api/v1/namespaces/default/persistentvolumeclaims/data",
            "GET /api/v1/persistentvolumes/pvc-x",
        ]
    );
}

#[tokio::test]
async fn resolve_reports_missing_and_unbound_claims() {
    let pending = serde_json::to_value(claim("Pending", None)).unwrap_or_default();
    let (client, seen) = fake(vec![(
        "/api/v1/namespaces/default/persistentvolumeclaims/data",
        pending,
    )]);
    let p = pod(&[("data", "data", None), ("other", "gone", None)]);
    let e = resolve(&client, &p, Path::new(ROOT))
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "Unable to attach or mount volumes: unmounted volumes=[data other], unattached volumes=[], \
             failed to process volumes=[data other]: error processing PVC default/data: PVC is not bound; \
             error processing PVC default/gone: failed to fetch PVC from API server: \
             persistentvolumeclaims \"gone\" not found"
        )
    );
    // Nothing asked of a volume while its claim is not bound.
    assert_eq!(seen.lock().unwrap_or_else(|e| e.into_inner()).len(), 2);
    // A pod without claims asks nothing.
    let (client, seen) = fake(vec![]);
    assert_eq!(
        resolve(&client, &pod(&[]), Path::new(ROOT)).await,
        Ok(HashMap::new())
    );
    assert!(seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
}

#[path = "claims_ephemeral_tests.rs"]
mod ephemeral;
