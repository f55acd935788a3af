//! The cluster CA, the serving certificate, client certificates and kubeconfig files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The CN the agents' API accepts from the API server (docs/contracts.md).
pub const KUBELET_CLIENT_USER: &str = "skiff-apiserver-kubelet-client";

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    ca_key_pem: String,
}

pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

fn validity(params: &mut CertificateParams, years: i32) {
    let now = jiff::Zoned::now();
    let y = now.year() as i32;
    params.not_before = rcgen::date_time_ymd(y - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(y + years, 1, 1);
}

impl Pki {
    /// Load the CA from `<data_dir>/pki`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self> {
        let dir = data_dir.join("pki");
        let crt = dir.join("ca.crt");
        let key = dir.join("ca.key");
        if crt.exists() && key.exists() {
            let ca_pem = std::fs::read_to_string(&crt)
                .with_context(|| format!("reading {}", crt.display()))?;
            let ca_key_pem = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            return Ok(Pki {
                dir,
                ca_pem,
                ca_key_pem,
            });
        }
        let kp = KeyPair::generate().context("generating CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "skiff-ca");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 10);
        let cert = params.self_signed(&kp).context("self-signing CA")?;
        let ca_pem = cert.pem();
        let ca_key_pem = kp.serialize_pem();
        write_private(&key, ca_key_pem.as_bytes())?;
        write_private(&crt, ca_pem.as_bytes())?;
        Ok(Pki {
            dir,
            ca_pem,
            ca_key_pem,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.ca_key_pem).context("parsing CA key")?;
        Issuer::from_ca_cert_pem(&self.ca_pem, key).context("parsing CA certificate")
    }

    /// The serving certificate and key (PEM), created on first start.
    pub fn serving_cert(&self, sans: &[String]) -> Result<(String, String)> {
        let crt = self.dir.join("apiserver.crt");
        let key = self.dir.join("apiserver.key");
        if crt.exists() && key.exists() {
            let (c, k) = (
                std::fs::read_to_string(&crt)?,
                std::fs::read_to_string(&key)?,
            );
            let missing: Vec<&String> = match cert_sans(&c) {
                Some(have) => sans.iter().filter(|s| !have.contains(s)).collect(),
                None => sans.iter().collect(),
            };
            if missing.is_empty() {
                return Ok((c, k));
            }
            // A data dir from an older version, a new advertise address or host name: the same CA signs a
            // certificate that names them, so clients that verify them keep working.
            tracing::info!(
                ?missing,
                "the serving certificate lacks names; issuing a new one"
            );
        }
        let kp = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans.to_vec()).context("serving cert SANs")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "skiff-apiserver");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 5);
        let cert = params
            .signed_by(&kp, &self.issuer()?)
            .context("signing serving cert")?;
        let (c, k) = (cert.pem(), kp.serialize_pem());
        write_private(&key, k.as_bytes())?;
        write_private(&crt, c.as_bytes())?;
        Ok((c, k))
    }

    /// The API server's client certificate for the agents' API (CN `skiff-apiserver-kubelet-client`,
    /// O `system:masters`), PEM, created on first start as `pki/apiserver-kubelet-client.{crt,key}`.
    pub fn kubelet_client_cert(&self) -> Result<(String, String)> {
        let crt = self.dir.join("apiserver-kubelet-client.crt");
        let key = self.dir.join("apiserver-kubelet-client.key");
        if crt.exists() && key.exists() {
            return Ok((
                std::fs::read_to_string(&crt)
                    .with_context(|| format!("reading {}", crt.display()))?,
                std::fs::read_to_string(&key)
                    .with_context(|| format!("reading {}", key.display()))?,
            ));
        }
        let (c, k) = self.client_cert(KUBELET_CLIENT_USER, &["system:masters".to_string()])?;
        write_private(&key, k.as_bytes())?;
        write_private(&crt, c.as_bytes())?;
        Ok((c, k))
    }

    /// A client certificate (CN = user, O = groups) and its key, PEM.
    /// At most two groups are encoded (rcgen keeps one value per attribute type).
    pub fn client_cert(&self, user: &str, groups: &[String]) -> Result<(String, String)> {
        let kp = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        if let Some(g) = groups.first() {
            dn.push(DnType::OrganizationName, g.as_str());
        }
        if let Some(g) = groups.get(1) {
            dn.push(DnType::CustomDnType(vec![2, 5, 4, 10]), g.as_str());
        }
        dn.push(DnType::CommonName, user);
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 5);
        let cert = params.signed_by(&kp, &self.issuer()?)?;
        Ok((cert.pem(), kp.serialize_pem()))
    }

    /// A kubeconfig for `user` with embedded CA and client credentials.
    pub fn kubeconfig(&self, server: &str, user: &str, groups: &[String]) -> Result<String> {
        let (crt, key) = self.client_cert(user, groups)?;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        Ok(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: skiff\ncontexts:\n- context:\n    cluster: skiff\n    user: {}\n  name: skiff\ncurrent-context: skiff\npreferences: {{}}\nusers:\n- name: {}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(&self.ca_pem),
            q(server),
            q(user),
            q(user),
            b64(&crt),
            b64(&key),
        ))
    }

    pub fn write_kubeconfig(
        &self,
        path: &Path,
        server: &str,
        user: &str,
        groups: &[String],
    ) -> Result<()> {
        let kc = self.kubeconfig(server, user, groups)?;
        write_private(path, kc.as_bytes())
    }
}

/// Signs certificate requests with the cluster CA (node client certificates from CSRs).
pub struct Signer {
    ca_pem: String,
    ca_key_pem: String,
}

impl Pki {
    pub fn signer(&self) -> Result<Signer> {
        let s = Signer {
            ca_pem: self.ca_pem.clone(),
            ca_key_pem: self.ca_key_pem.clone(),
        };
        s.issuer()?;
        Ok(s)
    }
}

impl Signer {
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.ca_key_pem).context("parsing CA key")?;
        Issuer::from_ca_cert_pem(&self.ca_pem, key).context("parsing CA certificate")
    }

    /// A client certificate (PEM) for the public key of `csr_pem` (its signature is verified), with the
    /// subject `CN=<cn>, O=<org>`, client-auth usage only and `validity` from now. Whatever else the
    /// request asks for (SANs, CA, other usages) is not copied.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        cn: &str,
        org: &str,
        validity: std::time::Duration,
    ) -> Result<String> {
        let mut req = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .context("parsing the certificate request")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, org);
        dn.push(DnType::CommonName, cn);
        let p = &mut req.params;
        p.distinguished_name = dn;
        p.subject_alt_names.clear();
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = now + validity;
        p.serial_number = Some(rcgen::SerialNumber::from_slice(
            &uuid::Uuid::new_v4().as_bytes()[..15],
        ));
        let cert = req
            .signed_by(&self.issuer()?)
            .context("signing the certificate")?;
        Ok(cert.pem())
    }
}

/// The host name, from the kernel.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Non-loopback IPv4 addresses of this host (from /proc/net/fib_trie's local routes).
pub fn host_ipv4s() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") else {
        return out;
    };
    let mut last: Option<&str> = None;
    for line in trie.lines() {
        let t = line.trim();
        if let Some(a) = t.strip_prefix("|-- ") {
            last = Some(a);
        } else if t.contains("/32 host LOCAL")
            && let Some(a) = last
            && let Ok(ip) = a.parse::<std::net::Ipv4Addr>()
            && !ip.is_loopback()
            && !out.contains(&IpAddr::V4(ip))
        {
            out.push(IpAddr::V4(ip));
        }
    }
    out
}

/// Subject alternative names for the serving certificate.
/// The DNS names and IP addresses (as text) a PEM certificate is valid for; None if it does not parse.
fn cert_sans(pem: &str) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = block.parse_x509().ok()?;
    let san = cert.subject_alternative_name().ok()??;
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => <[u8; 4]>::try_from(*b)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(*b)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
    )
}

pub fn serving_sans(advertise: IpAddr, service_cidr: ipnet::Ipv4Net) -> Vec<String> {
    let mut sans = vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
    ];
    // What pods use to reach the API server: the `kubernetes` Service, by address and by name.
    sans.push(crate::service_ips::kubernetes_ip(service_cidr).to_string());
    sans.extend(
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        .map(String::from),
    );
    if let Some(h) = hostname() {
        sans.push(h);
    }
    sans.push(advertise.to_string());
    for ip in host_ipv4s() {
        sans.push(ip.to_string());
    }
    let mut uniq = Vec::new();
    for s in sans {
        if !uniq.contains(&s) {
            uniq.push(s);
        }
    }
    uniq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_and_client_cert_roundtrip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(dir.path()).expect("pki");
        let again = Pki::load_or_create(dir.path()).expect("reload");
        assert_eq!(pki.ca_pem, again.ca_pem);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("pki/ca.key"))
                .expect("meta")
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let (crt, _) = pki
            .client_cert("system:node:n1", &["system:nodes".into(), "extra".into()])
            .expect("client");
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(crt.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .expect("pem");
        let (cn, groups) = crate::auth::identity_from_cert(&der).expect("identity");
        assert_eq!(cn, "system:node:n1");
        assert_eq!(
            groups,
            vec!["system:nodes".to_string(), "extra".to_string()]
        );
        let (s, _) = pki
            .serving_cert(&serving_sans(
                "127.0.0.1".parse().expect("ip"),
                "10.96.0.0/12".parse().expect("cidr"),
            ))
            .expect("serving");
        assert!(s.contains("BEGIN CERTIFICATE"));
        let names = cert_sans(&s).expect("SANs");
        for want in [
            "10.96.0.1",
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let kc = pki
            .kubeconfig(
                "https://127.0.0.1:6443",
                "skiff-admin",
                &["system:masters".into()],
            )
            .expect("kc");
        assert!(kc.contains("client-certificate-data"));
    }

    #[test]
    fn a_serving_cert_missing_names_is_reissued() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = Pki::load_or_create(dir.path()).expect("pki");
        let cidr = "10.96.0.0/12".parse().expect("cidr");
        let old = serving_sans("127.0.0.1".parse().expect("ip"), cidr);
        let (first, _) = pki.serving_cert(&old).expect("serving");
        let (again, _) = pki.serving_cert(&old).expect("serving");
        assert_eq!(first, again, "the same names keep the certificate");
        // A documentation address (RFC 5737), never one of the host's: the lab puts 169.254.64.1 on lo, and
        // serving_sans() includes the host's addresses.
        let new = serving_sans("192.0.2.77".parse().expect("ip"), cidr);
        let (second, _) = pki.serving_cert(&new).expect("serving");
        assert_ne!(first, second);
        let names = cert_sans(&second).expect("SANs");
        assert!(names.iter().any(|n| n == "192.0.2.77"), "{names:?}");
        // Written to disk: the next start keeps it.
        assert_eq!(pki.serving_cert(&new).expect("serving").0, second);
    }
}
