//! Generic ephemeral volumes: claims `<pod>-<volume>` the pod must control.

use super::*;

/// A pod `p` (uid `pod-uid`) with generic ephemeral volumes of these names.
fn ephemeral_pod(volumes: &[&str]) -> Pod {
    use k8s_openapi::api::core::v1::{EphemeralVolumeSource, PersistentVolumeClaimTemplate};
    let mut p = pod(&[]);
    p.metadata.uid = Some("pod-uid".into());
    let template = PersistentVolumeClaimTemplate {
        metadata: None,
        spec: PersistentVolumeClaimSpec::default(),
    };
    if let Some(spec) = p.spec.as_mut() {
        spec.volumes = Some(
            volumes
                .iter()
                .map(|name| Volume {
                    name: (*name).into(),
                    ephemeral: Some(EphemeralVolumeSource {
                        volume_claim_template: Some(template.clone()),
                    }),
                    ..Default::default()
                })
                .collect(),
        );
    }
    p
}

/// A Bound claim `name` of namespace `default` with an ownerReference to `owner_uid` (`controller`).
fn owned_claim(name: &str, owner_uid: &str, controller: bool) -> PersistentVolumeClaim {
    let mut c = claim("Bound", Some("pvc-x"));
    c.metadata.name = Some(name.into());
    c.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "p".into(),
            uid: owner_uid.into(),
            controller: Some(controller),
            block_owner_deletion: Some(true),
        },
    ]);
    c
}

#[test]
fn ephemeral_volumes_are_claims_the_pod_must_own() {
    let mut p = ephemeral_pod(&["scratch"]);
    if let Some(spec) = p.spec.as_mut() {
        spec.volumes.get_or_insert_with(Vec::new).push(Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: "shared".into(),
                read_only: Some(true),
            }),
            ..Default::default()
        });
    }
    assert_eq!(
        claim_uses(&p),
        vec![
            ClaimUse {
                volume: "scratch".into(),
                claim: "p-scratch".into(),
                ephemeral: true
            },
            ClaimUse {
                volume: "data".into(),
                claim: "shared".into(),
                ephemeral: false
            },
        ]
    );
    assert_eq!(
        claim_volumes(&p),
        vec![
            ("scratch".into(), "p-scratch".into()),
            ("data".into(), "shared".into())
        ]
    );
    // Ephemeral volumes have no readOnly flag.
    assert!(!read_only(&p, "scratch"));
    assert_eq!(
        check_ephemeral_owner(&p, &owned_claim("p-scratch", "pod-uid", true)),
        Ok(())
    );
    let not_owner =
        Err("PVC default/p-scratch was not created for pod default/p (pod is not owner)".into());
    for c in [
        owned_claim("p-scratch", "pod-uid", false),
        owned_claim("p-scratch", "other-uid", true),
        claim("Bound", Some("pvc-x")),
    ] {
        let mut c = c;
        c.metadata.name = Some("p-scratch".into());
        assert_eq!(check_ephemeral_owner(&p, &c), not_owner);
    }
    let mut elsewhere = owned_claim("p-scratch", "pod-uid", true);
    elsewhere.metadata.namespace = Some("other".into());
    assert!(check_ephemeral_owner(&p, &elsewhere).is_err());
}

#[tokio::test]
async fn resolve_checks_who_owns_an_ephemeral_claim() {
    let own = format!("{ROOT}/pvc-{UID}_default_p-mine");
    let pv = serde_json::to_value(provisioned(volume(
        "pvc-x",
        Some(UID),
        host_path(&own, "DirectoryOrCreate"),
    )))
    .unwrap_or_default();
    let as_json = |c: PersistentVolumeClaim| serde_json::to_value(c).unwrap_or_default();
    let (client, seen) = fake(vec![
        (
            "/api/v1/namespaces/default/persistentvolumeclaims/p-mine",
            as_json(owned_claim("p-mine", "pod-uid", true)),
        ),
        (
            "/api/v1/namespaces/default/persistentvolumeclaims/p-theirs",
            as_json(owned_claim("p-theirs", "someone-else", true)),
        ),
        ("/api/v1/persistentvolumes/pvc-x", pv),
    ]);
    let e = resolve(
        &client,
        &ephemeral_pod(&["mine", "theirs"]),
        Path::new(ROOT),
    )
    .await
    .err()
    .map(|e| e.failed);
    assert_eq!(
        e,
        Some(BTreeMap::from([(
            "theirs".to_string(),
            "PVC default/p-theirs was not created for pod default/p (pod is not owner)".to_string()
        )]))
    );
    // The foreign claim's volume is never asked for.
    assert_eq!(
        *seen.lock().unwrap_or_else(|e| e.into_inner()),
        vec![
            "GET /api/v1/namespaces/default/persistentvolumeclaims/p-mine",
            "GET /api/v1/persistentvolumes/pvc-x",
            "GET /api/v1/namespaces/default/persistentvolumeclaims/p-theirs",
        ]
    );
    let (client, _) = fake(vec![
        (
            "/api/v1/namespaces/default/persistentvolumeclaims/p-mine",
            as_json(owned_claim("p-mine", "pod-uid", true)),
        ),
        (
            "/api/v1/persistentvolumes/pvc-x",
            serde_json::to_value(provisioned(volume(
                "pvc-x",
                Some(UID),
                host_path(&own, "DirectoryOrCreate"),
            )))
            .unwrap_or_default(),
        ),
    ]);
    let got = resolve(&client, &ephemeral_pod(&["mine"]), Path::new(ROOT)).await;
    assert_eq!(
        got.map(|m| m.get("mine").map(|r| (r.claim.clone(), r.volume.clone()))),
        Ok(Some(("p-mine".to_string(), "pvc-x".to_string())))
    );
}
