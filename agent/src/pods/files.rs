//! Per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, generated under the pod directory
//! and bind-mounted into every container.

use std::net::{IpAddr, Ipv4Addr};
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

/// The pod's /etc/hosts. With `spec.subdomain`, the pod's own line starts with its fully qualified name
/// (`<hostname>.<subdomain>.<ns>.svc.<domain>`), as the kubelet writes it.
pub fn hosts(pod: &Pod, hostname: &str, pod_ip: Option<IpAddr>, domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    let subdomain = pod
        .spec
        .as_ref()
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    match (pod_ip, subdomain) {
        (Some(ip), Some(sub)) => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            out.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{ns}.svc.{domain}\t{hostname}\n"
            ));
        }
        (Some(ip), None) => out.push_str(&format!("{ip}\t{hostname}\n")),
        (None, _) => {}
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

/// Where pods' DNS settings come from: the cluster DNS server (address, domain) when this node has one, and
/// the host resolv.conf (`--resolv-conf`) for `dnsPolicy: Default`.
#[derive(Debug, Clone)]
pub struct Dns {
    pub cluster: Option<(Ipv4Addr, String)>,
    pub resolv_conf: PathBuf,
}

/// The kubelet's limits on what a resolv.conf may hold (glibc's, and those of the pod spec validation).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// A resolv.conf's nameservers, search domains and options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolver {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Parse a resolv.conf (comments after `#` or `;`).
pub fn parse_resolv(text: &str) -> Resolver {
    let mut r = Resolver::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
            // The last `search` or `domain` line wins (resolv.conf(5)).
            Some("search" | "domain") => r.searches = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    r
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !list.contains(&i) {
            list.push(i);
        }
    }
}

/// The pod's resolv.conf, as the kubelet builds it (`dnsPolicy`, `dnsConfig`). `host` is the text of
/// `--resolv-conf`; `cluster` the cluster DNS address and domain, if any.
pub fn resolv_conf(pod: &Pod, host: &str, cluster: Option<(Ipv4Addr, &str)>) -> String {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let use_cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut r = match (policy, cluster) {
        ("None", _) => Resolver::default(),
        (_, Some((ip, domain))) if use_cluster => {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let mut searches = vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            push_unique(&mut searches, parse_resolv(host).searches);
            Resolver {
                nameservers: vec![ip.to_string()],
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => {
            let mut r = parse_resolv(host);
            // A stub resolver on the host's loopback is unreachable from the pod's own network namespace.
            if !host_network {
                r.nameservers
                    .retain(|a| !a.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()));
            }
            r
        }
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        push_unique(
            &mut r.nameservers,
            cfg.nameservers.iter().flatten().cloned(),
        );
        push_unique(&mut r.searches, cfg.searches.iter().flatten().cloned());
        for o in cfg.options.iter().flatten() {
            let Some(name) = o.name.as_deref() else {
                continue;
            };
            r.options.retain(|x| x.split(':').next() != Some(name));
            r.options.push(match o.value.as_deref() {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            });
        }
    }
    r.nameservers.truncate(MAX_NAMESERVERS);
    let mut chars = 0;
    r.searches = r
        .searches
        .into_iter()
        .take(MAX_SEARCHES)
        .take_while(|s| {
            chars += s.len() + 1;
            chars <= MAX_SEARCH_CHARS
        })
        .collect();
    let mut out = String::new();
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    for n in &r.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

/// Write the three files (async; small).
pub async fn write(
    files: &EtcFiles,
    pod: &Pod,
    hostname: &str,
    pod_ip: Option<IpAddr>,
    dns: &Dns,
) -> std::io::Result<()> {
    if let Some(dir) = files.hosts.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let domain = dns
        .cluster
        .as_ref()
        .map_or("cluster.local", |(_, d)| d.as_str());
    tokio::fs::write(&files.hosts, hosts(pod, hostname, pod_ip, domain)).await?;
    tokio::fs::write(&files.hostname, format!("{hostname}\n")).await?;
    let host = tokio::fs::read_to_string(&dns.resolv_conf)
        .await
        .unwrap_or_default();
    let cluster = dns.cluster.as_ref().map(|(ip, d)| (*ip, d.as_str()));
    tokio::fs::write(&files.resolv, resolv_conf(pod, &host, cluster)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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
        let h = hosts(
            &pod,
            "web",
            Some("10.244.0.7".parse().expect("ip")),
            "cluster.local",
        );
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("10.244.0.7\tweb\n"));
        assert!(h.contains("1.2.3.4\ta\tb\n"));
        let mut sub = pod.clone();
        sub.metadata.namespace = Some("db".into());
        if let Some(s) = sub.spec.as_mut() {
            s.subdomain = Some("pg".into());
        }
        let h = hosts(
            &sub,
            "pg-0",
            Some("10.244.0.8".parse().expect("ip")),
            "k8s.example",
        );
        assert!(
            h.contains("10.244.0.8\tpg-0.pg.db.svc.k8s.example\tpg-0\n"),
            "{h}"
        );
    }

    const HOST: &str = "# comment\nsearch example.com lab\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
    const CLUSTER: Option<(Ipv4Addr, &str)> = Some((Ipv4Addr::new(10, 96, 0, 10), "cluster.local"));

    fn pod(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_string),
                host_network: Some(host_network),
                dns_config: config,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn default_policy_is_the_host_file_without_loopback_nameservers() {
        assert_eq!(
            resolv_conf(&pod(Some("Default"), false, None), HOST, CLUSTER),
            "search example.com lab\nnameserver 10.0.0.2\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf(&pod(Some("Default"), false, None), "nameserver ::1\n", None),
            ""
        );
        // A host-network pod shares the host's loopback: its stub resolver works there.
        assert!(
            resolv_conf(&pod(Some("Default"), true, None), HOST, CLUSTER)
                .contains("nameserver 127.0.0.53\n")
        );
    }

    #[test]
    fn cluster_first_uses_the_cluster_dns_and_search_path() {
        let want = "search shop.svc.cluster.local svc.cluster.local cluster.local example.com lab\n\
                    nameserver 10.96.0.10\noptions ndots:5\n";
        assert_eq!(resolv_conf(&pod(None, false, None), HOST, CLUSTER), want);
        assert_eq!(
            resolv_conf(&pod(Some("ClusterFirst"), false, None), HOST, CLUSTER),
            want
        );
        assert_eq!(
            resolv_conf(
                &pod(Some("ClusterFirstWithHostNet"), true, None),
                HOST,
                CLUSTER
            ),
            want
        );
        // ClusterFirst on the host network, or without cluster DNS, falls back to Default.
        let host_like = "search example.com lab\nnameserver 10.0.0.2\noptions edns0\n";
        assert_eq!(resolv_conf(&pod(None, false, None), HOST, None), host_like);
        assert!(
            resolv_conf(&pod(Some("ClusterFirst"), true, None), HOST, CLUSTER)
                .starts_with("search example.com lab\nnameserver 127.0.0.53\n")
        );
    }

    #[test]
    fn dns_config_is_merged_and_limits_apply() {
        let cfg = PodDNSConfig {
            nameservers: Some(vec![
                "1.1.1.1".into(),
                "10.96.0.10".into(),
                "8.8.8.8".into(),
                "9.9.9.9".into(),
            ]),
            searches: Some(vec!["svc.cluster.local".into(), "corp.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("single-request".into()),
                    value: None,
                },
            ]),
        };
        assert_eq!(
            resolv_conf(&pod(None, false, Some(cfg.clone())), "", CLUSTER),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.96.0.10\nnameserver 1.1.1.1\nnameserver 8.8.8.8\n\
             options ndots:2 single-request\n"
        );
        let none = PodDNSConfig {
            nameservers: Some(vec!["192.0.2.1".into()]),
            searches: Some((0..40).map(|i| format!("d{i}.example")).collect()),
            options: None,
        };
        let text = resolv_conf(&pod(Some("None"), false, Some(none)), HOST, CLUSTER);
        assert!(text.ends_with("\nnameserver 192.0.2.1\n"), "{text}");
        let search = text.lines().next().unwrap_or_default();
        assert_eq!(
            search.split_whitespace().count(),
            1 + MAX_SEARCHES,
            "{search}"
        );
    }
}
