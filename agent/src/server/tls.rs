//! TLS for the agent's API: the cluster CA (from the kubeconfig) verifies client certificates; the serving
//! certificate is self-signed at every start (the API server does not verify it).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ServerError;

/// The CA certificates (DER) the kubeconfig trusts for the API server: the cluster CA.
pub async fn cluster_ca(kubeconfig: &Path) -> Result<Vec<Vec<u8>>, ServerError> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| ServerError::Tls(format!("read {}: {e}", kubeconfig.display())))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| ServerError::Tls(format!("kubeconfig {}: {e}", kubeconfig.display())))?;
    match cfg.root_cert {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err(ServerError::Tls(format!(
            "kubeconfig {} names no certificate authority; the kubelet API needs it to verify clients",
            kubeconfig.display()
        ))),
    }
}

/// The user (CN) and groups (every O) of a DER certificate.
pub fn identity_from_cert(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, groups))
}

/// A self-signed serving certificate for the node's name and addresses.
pub fn self_signed(node_name: &str, node_ip: IpAddr) -> Result<(Vec<u8>, Vec<u8>), ServerError> {
    let mut sans = vec![
        node_name.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let ip = node_ip.to_string();
    if !sans.contains(&ip) {
        sans.push(ip);
    }
    let kp = KeyPair::generate().map_err(|e| ServerError::Tls(format!("key: {e}")))?;
    let mut params =
        CertificateParams::new(sans).map_err(|e| ServerError::Tls(format!("SANs: {e}")))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{node_name}@skiff-agent"));
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = jiff::Zoned::now();
    let y = i32::from(now.year());
    params.not_before = rcgen::date_time_ymd(y - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(y + 1, 12, 31);
    let cert = params
        .self_signed(&kp)
        .map_err(|e| ServerError::Tls(format!("self-sign: {e}")))?;
    Ok((cert.der().to_vec(), kp.serialize_der()))
}

/// rustls server config: self-signed serving cert, client certificates verified against `ca` when given
/// (optional at the TLS layer so `/healthz` works without one; the router refuses anonymous callers).
pub fn server_config(
    ca: &[Vec<u8>],
    node_name: &str,
    node_ip: IpAddr,
) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in ca {
        roots
            .add(CertificateDer::from(c.clone()))
            .map_err(|e| ServerError::Tls(format!("cluster CA: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServerError::Tls(format!("client verifier: {e}")))?;
    let (cert, key) = self_signed(node_name, node_ip)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(format!("versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![CertificateDer::from(cert)], key)
        .map_err(|e| ServerError::Tls(format!("serving certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
