//! The image service against registries that need mirrors or authentication (real docker-registry with
//! htpasswd or token auth, real containerd). Needs root.

mod support;

use skiff_agent::images::{ImageError, ImageService, PullPolicy, RegistryAuth, RegistryConfig};
use support::{TestContainerd, TestRegistry, image_record, snapshot_committed, tiny};

const NS: &str = "skiff-test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_serves_docker_io() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    tiny("mirrored").push(&reg.host(), "library/tiny:1.0", false, None);
    let dir = support::TempDir::new("regcfg");
    let path = dir.join("registries.yaml");
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
        reg.host()
    );
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("{e}"));
    let config = RegistryConfig::load(&path).unwrap_or_else(|e| panic!("load: {e}"));
    let cd = ctrd.connect(NS).await;
    let svc = ImageService::new(cd.clone(), config);

    let img = svc
        .ensure("tiny:1.0", PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull: {e}"));
    assert_eq!(img.reference, "docker.io/library/tiny:1.0");
    assert!(
        img.image_id.starts_with("docker.io/library/tiny@sha256:"),
        "{}",
        img.image_id
    );
    assert!(
        image_record(&cd, "docker.io/library/tiny:1.0")
            .await
            .is_some()
    );
    assert!(snapshot_committed(&cd, &img.chain_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_registry_needs_credentials() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start_with_basic_auth();
    tiny("secret").push(
        &reg.host(),
        "test/private:v1",
        false,
        Some("skiff:skiff-pass"),
    );
    let cd = ctrd.connect(NS).await;
    let svc = ImageService::new(cd.clone(), RegistryConfig::default());
    let name = format!("{}/test/private:v1", reg.host());

    let err = svc.ensure(&name, PullPolicy::IfNotPresent, &[]).await.err();
    assert!(
        matches!(err, Some(ImageError::Unauthorized { .. })),
        "got {err:?}"
    );
    let wrong = [RegistryAuth {
        registry: reg.host(),
        username: "skiff".into(),
        password: "nope".into(),
    }];
    let err = svc
        .ensure(&name, PullPolicy::IfNotPresent, &wrong)
        .await
        .err();
    assert!(
        matches!(err, Some(ImageError::Unauthorized { .. })),
        "got {err:?}"
    );

    let secret = format!(
        r#"{{"auths":{{"{}":{{"username":"skiff","password":"skiff-pass"}}}}}}"#,
        reg.host()
    );
    let creds =
        RegistryAuth::from_docker_config(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let img = svc
        .ensure(&name, PullPolicy::IfNotPresent, &creds)
        .await
        .unwrap_or_else(|e| panic!("pull: {e}"));
    assert!(img.pulled && snapshot_committed(&cd, &img.chain_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_dance() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start_with_token_auth(&["test/tokened"]);
    tiny("token").push(
        &reg.host(),
        "test/tokened:v1",
        false,
        Some("skiff:skiff-pass"),
    );
    let cd = ctrd.connect(NS).await;
    let svc = ImageService::new(cd.clone(), RegistryConfig::default());
    let name = format!("{}/test/tokened:v1", reg.host());

    // Anonymous: the token server refuses, which surfaces as Unauthorized.
    let err = svc.ensure(&name, PullPolicy::IfNotPresent, &[]).await.err();
    assert!(
        matches!(err, Some(ImageError::Unauthorized { .. })),
        "got {err:?}"
    );

    // Credentials from registries.yaml `configs` (not from a pull secret) are used for the token request.
    let yaml = format!(
        "configs:\n  \"{}\":\n    auth:\n      username: skiff\n      password: skiff-pass\n",
        reg.host()
    );
    let config = RegistryConfig::parse(&yaml).unwrap_or_else(|e| panic!("{e}"));
    let svc = ImageService::new(cd.clone(), config);
    let img = svc
        .ensure(&name, PullPolicy::Always, &[])
        .await
        .unwrap_or_else(|e| panic!("pull: {e}"));
    assert!(img.pulled && snapshot_committed(&cd, &img.chain_id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_registry_verifies_certificates_unless_told_not_to() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start_with_tls();
    tiny("tls").push(&reg.host(), "library/secure:v1", false, None);
    let cd = ctrd.connect(NS).await;
    let direct = format!("{}/library/secure:v1", reg.host());

    // Self-signed: plain HTTP gets 400 from the TLS port, HTTPS fails verification (rustls, ring provider).
    let svc = ImageService::new(cd.clone(), RegistryConfig::default());
    let err = svc
        .ensure(&direct, PullPolicy::IfNotPresent, &[])
        .await
        .err();
    assert!(matches!(err, Some(ImageError::Http { .. })), "got {err:?}");

    // `insecure_skip_verify` for the host: the direct reference and a docker.io mirror on it both work.
    let config = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"https://{host}\"]\nconfigs:\n  \"{host}\":\n    tls:\n      insecure_skip_verify: true\n",
        host = reg.host()
    );
    let config = RegistryConfig::parse(&config).unwrap_or_else(|e| panic!("{e}"));
    let svc = ImageService::new(cd.clone(), config);
    let img = svc
        .ensure(&direct, PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull over https: {e}"));
    assert!(img.pulled && snapshot_committed(&cd, &img.chain_id).await);
    let img = svc
        .ensure("secure:v1", PullPolicy::IfNotPresent, &[])
        .await
        .unwrap_or_else(|e| panic!("pull from https mirror: {e}"));
    assert_eq!(img.reference, "docker.io/library/secure:v1");
    assert!(!img.pulled, "same content, already in the store");
}

/// Layers compressed with zstd (`application/vnd.oci.image.layer.v1.tar+zstd`) are fetched, applied by
/// containerd's diff service (which checks each uncompressed digest against the config's diff_ids) and
/// give the same snapshot chain as the gzip push of the same image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_layers_unpack_to_the_same_chain_as_gzip() {
    let ctrd = TestContainerd::start();
    let reg = TestRegistry::start();
    let image = tiny("zstd");
    image.push_compressed(&reg.host(), "test/zstd:v1", false, None, Some("zstd"));
    image.push(&reg.host(), "test/gzip:v1", false, None);

    let raw = std::process::Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/test/zstd:v1", reg.host()))
        .output()
        .unwrap_or_else(|e| panic!("skopeo inspect: {e}"));
    let manifest: serde_json::Value =
        serde_json::from_slice(&raw.stdout).unwrap_or_else(|e| panic!("manifest: {e}"));
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .map(|l| l.iter().filter_map(|d| d["mediaType"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        types, ["application/vnd.oci.image.layer.v1.tar+zstd"; 2],
        "{manifest}"
    );

    let cd = ctrd.connect(NS).await;
    let svc = ImageService::new(cd.clone(), RegistryConfig::default());
    let zstd = svc
        .ensure(
            &format!("{}/test/zstd:v1", reg.host()),
            PullPolicy::IfNotPresent,
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("zstd pull: {e}"));
    assert!(zstd.pulled && snapshot_committed(&cd, &zstd.chain_id).await);

    let gzip = svc
        .ensure(
            &format!("{}/test/gzip:v1", reg.host()),
            PullPolicy::IfNotPresent,
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("gzip pull: {e}"));
    assert_eq!(zstd.chain_id, gzip.chain_id);
    assert_ne!(zstd.image_id, gzip.image_id);
}
