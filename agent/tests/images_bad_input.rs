//! Hostile or broken registry replies: each gives a clear error and leaves containerd unchanged (no image
//! record, no lease, no committed blob). The registry is a canned HTTP server, since a real one does not
//! misbehave on purpose; containerd is real. Needs root.

mod support;

use std::collections::HashMap;

use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::{ListImagesRequest, ListRequest};
use sha2::Digest;
use skiff_agent::images::{ImageError, ImageService, PullPolicy, RegistryConfig};
use support::{CannedHttp, Reply, TestContainerd, content_labels};

/// Whether an error is the expected kind.
type Check = fn(&ImageError) -> bool;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

fn manifest_for(config: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": config.len()},
        "layers": [],
    })
    .to_string()
    .into_bytes()
}

fn manifest_reply(body: impl Into<Vec<u8>>) -> Reply {
    Reply::new(200, &[("Content-Type", OCI_MANIFEST)], body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_registry_replies_give_clear_errors_and_change_nothing() {
    let ctrd = TestContainerd::start();
    let good_config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let served_config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["x"]}}"#;
    let pinned = format!("sha256:{}", "a".repeat(64));
    let routes: HashMap<String, Reply> = [
        ("/v2/evil/badjson/manifests/v1", manifest_reply("{not json")),
        (
            "/v2/evil/huge/manifests/v1",
            manifest_reply(vec![b' '; 5 << 20]),
        ),
        (
            "/v2/evil/lying/manifests/v1",
            Reply::new(
                200,
                &[
                    ("Content-Type", OCI_MANIFEST),
                    (
                        "Docker-Content-Digest",
                        &format!("sha256:{}", "0".repeat(64)),
                    ),
                ],
                manifest_for(good_config),
            ),
        ),
        (
            &format!("/v2/evil/pinned/manifests/{pinned}") as &str,
            manifest_reply(manifest_for(good_config)),
        ),
        (
            "/v2/evil/broken/manifests/v1",
            Reply::new(500, &[], "internal error"),
        ),
        ("/v2/evil/noauth/manifests/v1", Reply::new(401, &[], "")),
        (
            "/v2/evil/badauth/manifests/v1",
            Reply::new(
                401,
                &[("WWW-Authenticate", "Bearer realm=\"unterminated")],
                "",
            ),
        ),
        (
            "/v2/evil/schema1/manifests/v1",
            manifest_reply(r#"{"schemaVersion":1,"fsLayers":[]}"#),
        ),
        (
            "/v2/evil/swapped/manifests/v1",
            manifest_reply(manifest_for(good_config)),
        ),
        (
            &format!("/v2/evil/swapped/blobs/{}", sha(good_config)) as &str,
            Reply::new(200, &[], served_config.to_vec()),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let server = CannedHttp::start(routes);
    let host = format!("127.0.0.1:{}", server.port);
    let cd = ctrd.connect("skiff-test").await;
    let svc = ImageService::new(cd.clone(), RegistryConfig::default());

    let cases: Vec<(String, Check, &str)> = vec![
        (
            format!("{host}/evil/badjson:v1"),
            |e| matches!(e, ImageError::Malformed { .. }),
            "malformed",
        ),
        (
            format!("{host}/evil/huge:v1"),
            |e| matches!(e, ImageError::TooLarge { .. }),
            "larger than",
        ),
        (
            format!("{host}/evil/lying:v1"),
            |e| matches!(e, ImageError::DigestMismatch { .. }),
            "digest mismatch",
        ),
        (
            format!("{host}/evil/pinned@{pinned}"),
            |e| matches!(e, ImageError::DigestMismatch { .. }),
            "digest mismatch",
        ),
        (
            format!("{host}/evil/broken:v1"),
            |e| matches!(e, ImageError::Registry { status: 500, .. }),
            "500",
        ),
        (
            format!("{host}/evil/noauth:v1"),
            |e| matches!(e, ImageError::Unauthorized { .. }),
            "not authorized",
        ),
        (
            format!("{host}/evil/badauth:v1"),
            |e| matches!(e, ImageError::Malformed { .. }),
            "WWW-Authenticate",
        ),
        (
            format!("{host}/evil/schema1:v1"),
            |e| matches!(e, ImageError::Unsupported { .. }),
            "schema 1",
        ),
        (
            format!("{host}/evil/swapped:v1"),
            |e| matches!(e, ImageError::DigestMismatch { .. }),
            "digest mismatch",
        ),
        (
            format!("{host}/evil/absent:v1"),
            ImageError::is_not_found,
            "not found",
        ),
    ];
    for (image, expected, text) in cases {
        let err = svc.ensure(&image, PullPolicy::Always, &[]).await.err();
        let Some(err) = err else {
            panic!("{image}: pull succeeded")
        };
        assert!(expected(&err), "{image}: unexpected error {err:?}");
        assert!(
            err.to_string().contains(text),
            "{image}: {err} should mention {text:?}"
        );
        assert_eq!(err.kubelet_reason(), "ErrImagePull");
    }

    let images = ImagesClient::new(cd.channel())
        .list(cd.req(ListImagesRequest { filters: vec![] }))
        .await
        .unwrap_or_else(|e| panic!("list images: {e}"))
        .into_inner()
        .images;
    assert!(
        images.is_empty(),
        "failed pulls created image records: {images:?}"
    );
    let leases = LeasesClient::new(cd.channel())
        .list(cd.req(ListRequest { filters: vec![] }))
        .await
        .unwrap_or_else(|e| panic!("list leases: {e}"))
        .into_inner()
        .leases;
    assert!(leases.is_empty(), "failed pulls left leases: {leases:?}");
    assert!(content_labels(&cd, &sha(good_config)).await.is_none());
}
