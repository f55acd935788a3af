//! Per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, generated under the pod directory
//! and bind-mounted into every container.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

pub struct EtcFiles {
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv: PathBuf,
}

impl EtcFiles {
    pub fn in_dir(pod_dir: &Path) -> Self {
        Self {
            hosts: pod_dir.join("etc-hosts"),
            hostname: pod_dir.join("etc-hostname"),
            resolv: pod_dir.join("resolv.conf"),
        }
    }
}

pub fn hosts(pod: &Pod, hostname: &str, pod_ip: Option<IpAddr>) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = pod_ip {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for alias in pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_ref())
        .into_iter()
        .flatten()
    {
        let names = alias.hostnames.clone().unwrap_or_default();
        if !names.is_empty() {
            out.push_str(&format!(
                "\n# Entries added by HostAliases.\n{}\t{}\n",
                alias.ip,
                names.join("\t")
            ));
        }
    }
    out
}

/// The host's resolv.conf; nameservers on loopback (a local stub resolver) are useless inside the pod's
/// network namespace and are dropped.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver")
            && let Some(addr) = words.next()
            && addr.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Write the three files (async; small).
pub async fn write(
    files: &EtcFiles,
    pod: &Pod,
    hostname: &str,
    pod_ip: Option<IpAddr>,
) -> std::io::Result<()> {
    if let Some(dir) = files.hosts.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(&files.hosts, hosts(pod, hostname, pod_ip)).await?;
    tokio::fs::write(&files.hostname, format!("{hostname}\n")).await?;
    let host = tokio::fs::read_to_string("/etc/resolv.conf")
        .await
        .unwrap_or_default();
    tokio::fs::write(&files.resolv, resolv_conf(&host)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodSpec};

    #[test]
    fn hosts_file() {
        let pod = Pod {
            spec: Some(PodSpec {
                host_aliases: Some(vec![HostAlias {
                    ip: "1.2.3.4".into(),
                    hostnames: Some(vec!["a".into(), "b".into()]),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let h = hosts(&pod, "web", Some("10.244.0.7".parse().expect("ip")));
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.244.0.7\tweb\n"));
        assert!(h.contains("1.2.3.4\ta\tb\n"));
    }

    #[test]
    fn resolv_drops_loopback_nameservers() {
        let host =
            "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
        assert_eq!(
            resolv_conf(host),
            "search example.com\nnameserver 10.0.0.2\noptions edns0\n"
        );
        assert_eq!(resolv_conf("nameserver ::1\n"), "");
    }
}
