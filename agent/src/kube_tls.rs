//! The agent's API client with a client certificate that can be swapped while the agent runs
//! (certificate rotation, like the kubelet's `--rotate-certificates`): kube-rs's TLS settings from the
//! kubeconfig, with rustls asking [`SwappableCert`] for the certificate at every new TLS handshake.
//! Connections already open keep the certificate they were made with until they close.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use kube::client::ConfigExt as _;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The client certificate new connections present.
#[derive(Debug)]
pub struct SwappableCert(RwLock<Arc<CertifiedKey>>);

fn certified_key(crt_pem: &str, key_pem: &str) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("parsing the client certificate")?;
    anyhow::ensure!(!chain.is_empty(), "no client certificate in the kubeconfig");
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).context("parsing the client key")?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider())
        .context("the client key does not match the certificate")
}

impl SwappableCert {
    /// Present `crt_pem`/`key_pem` on connections made from now on.
    pub fn swap(&self, crt_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let ck = Arc::new(certified_key(crt_pem, key_pem)?);
        match self.0.write() {
            Ok(mut g) => *g = ck,
            Err(poisoned) => *poisoned.into_inner() = ck,
        }
        Ok(())
    }

    /// Reload the certificate and key from a node kubeconfig (after `crate::bootstrap::renew`).
    pub fn reload(&self, kubeconfig: &std::path::Path) -> anyhow::Result<()> {
        let (_, _, crt, key) = crate::bootstrap::read_kubeconfig(kubeconfig)?;
        self.swap(&crt, &key)
    }
}

impl ResolvesClientCert for SwappableCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        match self.0.read() {
            Ok(g) => Some(g.clone()),
            Err(poisoned) => Some(poisoned.into_inner().clone()),
        }
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A client for the kubeconfig at `path` whose client certificate can be swapped; without a client
/// certificate in the kubeconfig (tokens), a plain kube-rs client and `None`.
pub async fn client(
    path: &std::path::Path,
) -> anyhow::Result<(kube::Client, Option<Arc<SwappableCert>>)> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("failed to read kubeconfig {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .with_context(|| format!("invalid kubeconfig {}", path.display()))?;
    // Proxies and TLS server-name overrides are left to kube-rs's own builder (no rotation there).
    let plain = config.proxy_url.is_some() || config.tls_server_name.is_some();
    let identity = crate::bootstrap::read_kubeconfig(path)
        .ok()
        .filter(|_| !plain);
    let Some((_, _, crt, key)) = identity else {
        let c = kube::Client::try_from(config).context("failed to build the API client")?;
        return Ok((c, None));
    };
    let cert = Arc::new(SwappableCert(RwLock::new(Arc::new(certified_key(
        &crt, &key,
    )?))));
    let mut tls = config
        .rustls_client_config()
        .context("TLS settings of the kubeconfig")?;
    tls.client_auth_cert_resolver = cert.clone();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnector::from((http, Arc::new(tls)));
    let mut timeouts = hyper_timeout::TimeoutConnector::new(https);
    timeouts.set_connect_timeout(config.connect_timeout);
    timeouts.set_read_timeout(config.read_timeout);
    timeouts.set_write_timeout(config.write_timeout);
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // Without a timer idle connections are never closed, only found stale when reused.
            .pool_timer(hyper_util::rt::TokioTimer::new())
            .build(timeouts);
    // The layers kube-rs's own builder puts around the HTTP client (minus tracing spans).
    let retry = config
        .default_retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer().context("authentication settings")?)
        .layer(config.extra_headers_layer().context("extra headers")?)
        .map_err(tower::BoxError::from)
        .service(http_client);
    Ok((
        kube::Client::new(service, config.default_namespace),
        Some(cert),
    ))
}
