//! The image service against a real containerd 1.6 and a real docker-registry (both private to each test).
//! Needs root.

mod support;

use std::time::Instant;

use containerd_client::services::v1::ListStatusesRequest;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::leases_client::LeasesClient;
use skiff_agent::containerd::Containerd;
use skiff_agent::images::{ImageError, ImageService, PullPolicy, RegistryConfig};
use support::{
    TestContainerd, TestRegistry, content_labels, image_record, snapshot_committed, tiny,
};

const NS: &str = "skiff-test";

fn service(cd: Containerd) -> ImageService {
    ImageService::new(cd, RegistryConfig::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_unpacks_then_if_not_present_fetches_nothing() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let img = tiny("one");
    img.push(&reg.host(), "test/tiny:v1", false, None);
    let manifest = img.manifest();
    let cd = ctrd.connect(NS).await;
    let svc = service(cd.clone());
    let name = format!("{}/test/tiny:v1", reg.host());

    let first = svc
        .ensure(&name, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull: {e}"));
    assert!(first.pulled);
    assert_eq!(first.reference, name);
    let target = image_record(&cd, &name)
        .await
        .unwrap_or_else(|| panic!("no image record"));
    assert_eq!(first.image_id, format!("{}/test/tiny@{target}", reg.host()));
    assert!(
        snapshot_committed(&cd, &first.chain_id).await,
        "top snapshot missing"
    );
    let cfg = first.config.config().clone().unwrap_or_default();
    assert_eq!(
        cfg.env().clone().unwrap_or_default(),
        ["FOO=bar", "PATH=/bin"]
    );
    assert_eq!(
        cfg.cmd().clone().unwrap_or_default(),
        ["/bin/sh", "-c", "echo hi"]
    );
    assert_eq!(first.config.rootfs().diff_ids().len(), 2);
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    let expected_size = manifest["config"]["size"].as_u64().unwrap_or_default()
        + layers
            .iter()
            .map(|l| l["size"].as_u64().unwrap_or_default())
            .sum::<u64>();
    assert_eq!(first.size, expected_size);

    // GC labels as containerd's own pull sets them.
    let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let labels = content_labels(&cd, config_digest)
        .await
        .unwrap_or_else(|| panic!("config blob missing"));
    assert_eq!(
        labels.get("containerd.io/gc.ref.snapshot.overlayfs"),
        Some(&first.chain_id)
    );
    let labels = content_labels(&cd, &target)
        .await
        .unwrap_or_else(|| panic!("manifest blob missing"));
    assert_eq!(
        labels
            .get("containerd.io/gc.ref.content.config")
            .map(String::as_str),
        Some(config_digest)
    );
    assert_eq!(
        labels
            .get("containerd.io/gc.ref.content.l.1")
            .map(String::as_str),
        layers[1]["digest"].as_str()
    );
    let layer0 = layers[0]["digest"].as_str().unwrap_or_default();
    let labels = content_labels(&cd, layer0)
        .await
        .unwrap_or_else(|| panic!("layer blob missing"));
    assert_eq!(
        labels.get("containerd.io/uncompressed"),
        Some(&first.config.rootfs().diff_ids()[0])
    );

    // Present: nothing fetched, from the in-memory cache, fast.
    let start = Instant::now();
    let again = svc
        .ensure(&name, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("again: {e}"));
    let cached_ms = start.elapsed().as_secs_f64() * 1000.0;
    eprintln!("ensure on a present image (cached): {cached_ms:.2} ms");
    assert!(!again.pulled);
    assert_eq!(
        (&again.image_id, &again.chain_id),
        (&first.image_id, &first.chain_id)
    );
    assert!(cached_ms < 50.0, "cached ensure took {cached_ms:.1} ms");

    // A fresh service (agent restart) finds it in containerd, and Never accepts it.
    let fresh = service(cd.clone());
    let found = fresh
        .ensure(&name, PullPolicy::Never, &[])
        .await
        .unwrap_or_else(|e| panic!("never: {e}"));
    assert!(!found.pulled);
    assert_eq!(
        (&found.image_id, &found.chain_id, found.size),
        (&first.image_id, &first.chain_id, first.size)
    );

    // The lease is gone: only the image record keeps things alive.
    let leases = LeasesClient::new(cd.channel())
        .list(cd.req(containerd_client::services::v1::ListRequest { filters: vec![] }))
        .await
        .unwrap_or_else(|e| panic!("leases: {e}"))
        .into_inner()
        .leases;
    assert!(leases.is_empty(), "pull left leases behind: {leases:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_re_resolves_the_tag() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let cd = ctrd.connect(NS).await;
    let svc = service(cd.clone());
    let name = format!("{}/test/moving:latest", reg.host());
    tiny("one").push(&reg.host(), "test/moving:latest", false, None);

    let v1 = svc
        .ensure(&name, PullPolicy::Always, &[])
        .await
        .unwrap_or_else(|e| panic!("v1: {e}"));
    assert!(v1.pulled);
    let same = svc
        .ensure(&name, PullPolicy::Always, &[])
        .await
        .unwrap_or_else(|e| panic!("same: {e}"));
    assert!(!same.pulled, "unchanged tag must fetch nothing");
    assert_eq!(same.image_id, v1.image_id);

    tiny("two").push(&reg.host(), "test/moving:latest", false, None);
    let cached = svc
        .ensure(&name, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("cached: {e}"));
    assert_eq!(
        cached.image_id, v1.image_id,
        "IfNotPresent must not look at the registry"
    );
    let v2 = svc
        .ensure(&name, PullPolicy::Always, &[])
        .await
        .unwrap_or_else(|e| panic!("v2: {e}"));
    assert!(v2.pulled);
    assert_ne!(v2.image_id, v1.image_id);
    assert_ne!(v2.chain_id, v1.chain_id);
    assert!(snapshot_committed(&cd, &v2.chain_id).await);
    let target = image_record(&cd, &name).await.unwrap_or_default();
    assert!(
        v2.image_id.ends_with(&target),
        "record must point at the new manifest"
    );
    let now = svc
        .ensure(&name, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("now: {e}"));
    assert_eq!(now.image_id, v2.image_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_without_image_errors() {
    let ctrd = TestContainerd::start();
    let svc = service(ctrd.connect(NS).await);
    let err = svc
        .ensure("127.0.0.1:1/nothing/here:v1", PullPolicy::Never, &[])
        .await
        .err();
    assert!(matches!(err, Some(ImageError::NeverPull(_))), "got {err:?}");
    assert_eq!(err.map(|e| e.kubelet_reason()), Some("ErrImageNeverPull"));
    let err = svc
        .ensure("Bad//Name", PullPolicy::IfNotPresent, &[])
        .await
        .err();
    assert_eq!(err.map(|e| e.kubelet_reason()), Some("InvalidImageName"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_is_rejected_and_leaves_no_image() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let img = tiny("corrupt-me");
    img.push(&reg.host(), "test/bad:v1", false, None);
    let layer = img.manifest()["layers"][1]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let blob = reg.blob_path(&layer);
    let mut data = std::fs::read(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    let last = data.len() - 1;
    data[last] ^= 0xff; // same length, different digest
    std::fs::write(&blob, data).unwrap_or_else(|e| panic!("{e}"));

    let cd = ctrd.connect(NS).await;
    let svc = service(cd.clone());
    let name = format!("{}/test/bad:v1", reg.host());
    let err = svc.ensure(&name, PullPolicy::IfNotPresent, &[]).await.err();
    assert!(
        matches!(&err, Some(ImageError::DigestMismatch { .. })),
        "got {err:?}"
    );
    assert!(
        image_record(&cd, &name).await.is_none(),
        "a failed pull must not create the image record"
    );
    assert!(
        content_labels(&cd, &layer).await.is_none(),
        "corrupt blob must not be committed"
    );
    let ingests = ContentClient::new(cd.channel())
        .list_statuses(cd.req(ListStatusesRequest { filters: vec![] }))
        .await
        .unwrap_or_else(|e| panic!("list ingests: {e}"))
        .into_inner()
        .statuses;
    assert!(
        ingests.is_empty(),
        "the partial ingest must be aborted: {ingests:?}"
    );
    let err = svc.ensure(&name, PullPolicy::Never, &[]).await.err();
    assert!(matches!(err, Some(ImageError::NeverPull(_))), "got {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_image_is_not_found() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    tiny("x").push(&reg.host(), "test/known:v1", false, None);
    let svc = service(ctrd.connect(NS).await);
    for name in [
        format!("{}/test/unknown:v1", reg.host()),
        format!("{}/test/known:nope", reg.host()),
    ] {
        let err = svc.ensure(&name, PullPolicy::IfNotPresent, &[]).await.err();
        assert!(
            err.as_ref().is_some_and(ImageError::is_not_found),
            "{name}: got {err:?}"
        );
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.contains("not found") && text.contains("MANIFEST_UNKNOWN"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_picks_host_platform_and_concurrent_calls_share_one_pull() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let mut img = tiny("indexed");
    let index_digest = img.wrap_in_index();
    img.push(&reg.host(), "test/multi:v1", true, None);
    let cd = ctrd.connect(NS).await;
    let svc = service(cd.clone());
    let name = format!("{}/test/multi:v1", reg.host());

    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (svc, name) = (svc.clone(), name.clone());
            tokio::spawn(async move { svc.ensure(&name, PullPolicy::IfNotPresent, &[]).await })
        })
        .collect();
    let mut ids = Vec::new();
    for c in calls {
        let img = c
            .await
            .unwrap_or_else(|e| panic!("task: {e}"))
            .unwrap_or_else(|e| panic!("pull: {e}"));
        ids.push((img.image_id, img.chain_id));
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(
        ids[0].0,
        format!("{}/test/multi@{index_digest}", reg.host())
    );
    assert!(snapshot_committed(&cd, &ids[0].1).await);
    let labels = content_labels(&cd, &index_digest)
        .await
        .unwrap_or_else(|| panic!("index blob missing"));
    assert!(
        labels.contains_key("containerd.io/gc.ref.content.m.0"),
        "{labels:?}"
    );
    let again = svc
        .ensure(&name, PullPolicy::Always, &[])
        .await
        .unwrap_or_else(|e| panic!("always: {e}"));
    assert!(!again.pulled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_layer_streams_in_chunks_and_second_namespace_reuses_content() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let img = tiny("big");
    img.add_random_layer("data/random.bin", 5 << 20);
    img.push(&reg.host(), "test/big:v1", false, None);
    let manifest = img.manifest();
    let big = manifest["layers"][2].clone();
    assert!(
        big["size"].as_u64().unwrap_or_default() > 5 << 20,
        "layer should be incompressible"
    );
    let name = format!("{}/test/big:v1", reg.host());

    let cd = ctrd.connect(NS).await;
    let start = Instant::now();
    let first = service(cd.clone())
        .ensure(&name, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull: {e}"));
    eprintln!(
        "pull of a 3-layer 5 MiB image: {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    assert!(first.pulled && snapshot_committed(&cd, &first.chain_id).await);

    // Another namespace of the same containerd: blobs are shared (commit-only writes), snapshots are not.
    let other = ctrd.connect("skiff-test-other").await;
    let second = service(other.clone())
        .ensure(&name, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull in second namespace: {e}"));
    assert!(
        !second.pulled,
        "content already in containerd must not be downloaded again"
    );
    assert_eq!(
        (&second.image_id, &second.chain_id),
        (&first.image_id, &first.chain_id)
    );
    assert!(snapshot_committed(&other, &second.chain_id).await);
    let digest = big["digest"].as_str().unwrap_or_default();
    let labels = content_labels(&other, digest)
        .await
        .unwrap_or_else(|| panic!("layer missing in ns 2"));
    assert_eq!(
        labels.get("containerd.io/uncompressed"),
        Some(&second.config.rootfs().diff_ids()[2])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_references_sharing_layers_pull_concurrently() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let img = tiny("shared");
    img.add_random_layer("data/random.bin", 3 << 20);
    let names: Vec<String> = (0..3)
        .map(|i| {
            img.push(&reg.host(), &format!("test/shared{i}:v1"), false, None);
            format!("{}/test/shared{i}:v1", reg.host())
        })
        .collect();
    let cd = ctrd.connect(NS).await;
    let svc = service(cd.clone());
    let start = Instant::now();
    let calls: Vec<_> = names
        .iter()
        .map(|n| {
            let (svc, n) = (svc.clone(), n.clone());
            tokio::spawn(async move { svc.ensure(&n, PullPolicy::IfNotPresent, &[]).await })
        })
        .collect();
    let mut chains = Vec::new();
    for c in calls {
        let img = c
            .await
            .unwrap_or_else(|e| panic!("task: {e}"))
            .unwrap_or_else(|e| panic!("pull: {e}"));
        chains.push(img.chain_id);
    }
    eprintln!(
        "3 concurrent pulls sharing layers: {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    assert!(chains.windows(2).all(|w| w[0] == w[1]), "{chains:?}");
    assert!(snapshot_committed(&cd, &chains[0]).await);
    for n in &names {
        assert!(image_record(&cd, n).await.is_some(), "{n} has no record");
    }
}
