//! The cluster zone's records, from the Services and Endpoints the agent watches: what CoreDNS's
//! `kubernetes` plugin answers (the Kubernetes DNS-Based Service Discovery specification 1.1.0).
//!
//! - `<svc>.<ns>.svc.<zone>`: A of the cluster IP; for a headless Service, A of every ready endpoint;
//!   CNAME of an ExternalName Service; SRV of every named port.
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: SRV of that named port (per ready endpoint when headless,
//!   with their A records as additional records).
//! - `<hostname>.<svc>.<ns>.svc.<zone>`: A of a headless Service's endpoint by its hostname (or its
//!   dashed address, `10-244-1-7`).
//! - `<a-b-c-d>.<ns>.pod.<zone>`: A of a.b.c.d (CoreDNS's `pods insecure`, kubeadm's setting).
//! - `<d>.<c>.<b>.<a>.in-addr.arpa`: PTR of a cluster IP or a headless endpoint; other addresses are not
//!   ours and go upstream, as does every name outside the zone.
//! - `dns-version.<zone>`: TXT `1.1.0`; the apex: SOA.
//!
//! Names are matched case-insensitively. A name in the zone that matches nothing is NXDOMAIN; a name that
//! exists without records of the asked type (AAAA of a Service: IPv6 is not served) is NODATA.

use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service, ServicePort};

/// The schema version of the specification implemented, served as `dns-version.<zone>` TXT.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// What the zone knows: the watched Services and Endpoints.
pub trait Catalog {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    fn endpoints(&self, namespace: &str, name: &str) -> Option<Arc<Endpoints>>;
    /// Every Service (for reverse lookups).
    fn services(&self) -> Vec<Arc<Service>>;
}

/// The record types the zone serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    A,
    Cname,
    Srv,
    Ptr,
    Txt,
    Soa,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Cname(String),
    Srv {
        port: u16,
        /// Each endpoint weighs the same: 100 / count, as CoreDNS does.
        weight: u16,
        target: String,
    },
    Ptr(String),
    Txt(String),
    Soa,
}

impl Data {
    pub fn kind(&self) -> Kind {
        match self {
            Data::A(_) => Kind::A,
            Data::Cname(_) => Kind::Cname,
            Data::Srv { .. } => Kind::Srv,
            Data::Ptr(_) => Kind::Ptr,
            Data::Txt(_) => Kind::Txt,
            Data::Soa => Kind::Soa,
        }
    }
}

/// One record: owner name (lower case, no trailing dot) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub data: Data,
}

/// The question's type, as far as the zone is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Kind(Kind),
    /// A type the zone never has (AAAA, MX, …): the name exists or not, but there is no data.
    Other,
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Not the cluster's to answer: ask the upstream servers.
    Forward,
    Records {
        answers: Vec<Record>,
        additional: Vec<Record>,
    },
    /// The name exists but has no record of the asked type.
    NoData,
    NxDomain,
}

/// The answer to `qname` (any case, with or without the trailing dot) of type `wanted` in `zone`
/// (e.g. `cluster.local`).
pub fn lookup(zone: &str, qname: &str, wanted: Wanted, catalog: &dyn Catalog) -> Answer {
    let qname = qname.trim_end_matches('.').to_ascii_lowercase();
    let zone = zone.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = qname.strip_suffix(".in-addr.arpa") {
        return reverse(&zone, rest, wanted, catalog);
    }
    let rest = if qname == zone {
        ""
    } else if let Some(r) = qname.strip_suffix(&format!(".{zone}")) {
        r
    } else {
        return Answer::Forward;
    };
    let labels: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('.').collect()
    };
    let one = |data| {
        (
            vec![Record {
                name: qname.clone(),
                data,
            }],
            Vec::new(),
        )
    };
    let (records, extra) = match labels.as_slice() {
        [] => one(Data::Soa),
        ["dns-version"] => one(Data::Txt(SCHEMA_VERSION.into())),
        ["svc"] | [_, "svc"] | ["pod"] | [_, "pod"] => (Vec::new(), Vec::new()),
        [addr, _ns, "pod"] => match dashed_ip(addr) {
            Some(ip) => one(Data::A(ip)),
            None => return Answer::NxDomain,
        },
        [name, ns, "svc"] => match catalog.service(ns, name) {
            Some(svc) => service_records(&zone, &svc, catalog, None),
            None => return Answer::NxDomain,
        },
        [port, proto, name, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
            let Some(svc) = catalog.service(ns, name) else {
                return Answer::NxDomain;
            };
            let found = service_records(&zone, &svc, catalog, Some((&port[1..], &proto[1..])));
            if found.0.is_empty() {
                return Answer::NxDomain;
            }
            found
        }
        [host, name, ns, "svc"] => {
            let Some(svc) = catalog.service(ns, name) else {
                return Answer::NxDomain;
            };
            let eps = if is_headless(&svc) {
                catalog.endpoints(ns, name)
            } else {
                None
            };
            let ips: Vec<Ipv4Addr> = ready_addresses(eps.as_deref())
                .filter(|a| endpoint_label(a).as_deref() == Some(*host))
                .filter_map(|a| a.ip.parse().ok())
                .collect();
            if ips.is_empty() {
                return Answer::NxDomain;
            }
            let records = ips
                .into_iter()
                .map(|ip| Record {
                    name: qname.clone(),
                    data: Data::A(ip),
                })
                .collect();
            (records, Vec::new())
        }
        _ => return Answer::NxDomain,
    };
    select(records, extra, wanted)
}

/// Keep the records of the asked type (a CNAME answers every type). `extra` goes to the additional
/// section when an SRV record is answered (the A records of its targets).
fn select(records: Vec<Record>, extra: Vec<Record>, wanted: Wanted) -> Answer {
    let answers: Vec<Record> = records
        .into_iter()
        .filter(|r| match wanted {
            Wanted::Any => true,
            Wanted::Kind(k) => r.data.kind() == k || r.data.kind() == Kind::Cname,
            Wanted::Other => r.data.kind() == Kind::Cname,
        })
        .collect();
    if answers.is_empty() {
        return Answer::NoData;
    }
    let with_srv = answers.iter().any(|r| r.data.kind() == Kind::Srv);
    Answer::Records {
        answers,
        additional: if with_srv { extra } else { Vec::new() },
    }
}

fn is_headless(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

fn fqdn(zone: &str, ns: &str, name: &str) -> String {
    format!("{name}.{ns}.svc.{zone}").to_ascii_lowercase()
}

/// The ready addresses of an Endpoints object.
fn ready_addresses(eps: Option<&Endpoints>) -> impl Iterator<Item = &EndpointAddress> {
    eps.into_iter()
        .flat_map(|e| e.subsets.iter().flatten())
        .flat_map(|s| s.addresses.iter().flatten())
}

/// The label an endpoint is known by under its Service: its hostname, else its dashed address.
fn endpoint_label(a: &EndpointAddress) -> Option<String> {
    match a.hostname.as_deref() {
        Some(h) if !h.is_empty() => Some(h.to_ascii_lowercase()),
        _ => {
            a.ip.parse::<Ipv4Addr>()
                .ok()
                .map(|ip| ip.to_string().replace('.', "-"))
        }
    }
}

fn dashed_ip(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

fn port_matches(p: &ServicePort, name: &str, proto: &str) -> bool {
    p.name
        .as_deref()
        .is_some_and(|n| n.eq_ignore_ascii_case(name))
        && p.protocol
            .as_deref()
            .unwrap_or("TCP")
            .eq_ignore_ascii_case(proto)
}

/// The records of a Service's name (`port` = None) or of one of its named ports' SRV names.
fn service_records(
    zone: &str,
    svc: &Service,
    catalog: &dyn Catalog,
    port: Option<(&str, &str)>,
) -> (Vec<Record>, Vec<Record>) {
    let Some((ns, name, spec)) = crate::proxy::parts(svc) else {
        return (Vec::new(), Vec::new());
    };
    let own = fqdn(zone, ns, name);
    let owner = match port {
        Some((p, proto)) => format!("_{p}._{proto}.{own}"),
        None => own.clone(),
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec
            .external_name
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let records = match (port, target.is_empty()) {
            (None, false) => vec![Record {
                name: owner,
                data: Data::Cname(target),
            }],
            _ => Vec::new(),
        };
        return (records, Vec::new());
    }
    let ports: Vec<&ServicePort> = spec
        .ports
        .iter()
        .flatten()
        .filter(|p| match port {
            Some((n, proto)) => port_matches(p, n, proto),
            None => p.name.as_deref().is_some_and(|n| !n.is_empty()),
        })
        .collect();
    let mut out = Vec::new();
    if !is_headless(svc) {
        if port.is_none() {
            let ips = match &spec.cluster_ips {
                Some(ips) if !ips.is_empty() => ips.clone(),
                _ => spec.cluster_ip.iter().cloned().collect(),
            };
            out.extend(ips.iter().filter_map(|i| i.parse().ok()).map(|ip| Record {
                name: owner.clone(),
                data: Data::A(ip),
            }));
        }
        for p in ports {
            let Ok(number) = u16::try_from(p.port) else {
                continue;
            };
            out.push(Record {
                name: owner.clone(),
                data: Data::Srv {
                    port: number,
                    weight: 100,
                    target: own.clone(),
                },
            });
        }
        return (out, Vec::new());
    }
    // Headless: the ready endpoints themselves.
    let eps = catalog.endpoints(ns, name);
    let mut addrs: Vec<(Ipv4Addr, String)> = ready_addresses(eps.as_deref())
        .filter_map(|a| Some((a.ip.parse().ok()?, endpoint_label(a)?)))
        .collect();
    addrs.sort();
    addrs.dedup();
    if port.is_none() {
        out.extend(addrs.iter().map(|(ip, _)| Record {
            name: owner.clone(),
            data: Data::A(*ip),
        }));
    }
    let mut extra = Vec::new();
    let weight = u16::try_from(100 / addrs.len().max(1))
        .unwrap_or(100)
        .max(1);
    for subset in eps.iter().flat_map(|e| e.subsets.iter().flatten()) {
        for ep_port in subset.ports.iter().flatten() {
            let Some(pname) = ep_port.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let proto = ep_port.protocol.as_deref().unwrap_or("TCP");
            if !ports.iter().any(|p| {
                p.name.as_deref() == Some(pname) && p.protocol.as_deref().unwrap_or("TCP") == proto
            }) {
                continue;
            }
            let Ok(number) = u16::try_from(ep_port.port) else {
                continue;
            };
            for a in subset.addresses.iter().flatten() {
                let (Ok(ip), Some(label)) = (a.ip.parse::<Ipv4Addr>(), endpoint_label(a)) else {
                    continue;
                };
                let target = format!("{label}.{own}");
                out.push(Record {
                    name: owner.clone(),
                    data: Data::Srv {
                        port: number,
                        weight,
                        target: target.clone(),
                    },
                });
                extra.push(Record {
                    name: target,
                    data: Data::A(ip),
                });
            }
        }
    }
    (out, extra)
}

/// PTR of `<d>.<c>.<b>.<a>` (the part before `.in-addr.arpa`).
fn reverse(zone: &str, rest: &str, wanted: Wanted, catalog: &dyn Catalog) -> Answer {
    let octets: Vec<u8> = rest
        .split('.')
        .rev()
        .filter_map(|o| o.parse().ok())
        .collect();
    let (4, 4) = (octets.len(), rest.split('.').count()) else {
        return Answer::Forward;
    };
    let ip = Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]);
    let text = ip.to_string();
    let mut names = Vec::new();
    for svc in catalog.services() {
        let Some((ns, name, spec)) = crate::proxy::parts(&svc) else {
            continue;
        };
        let ips = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter());
        if !is_headless(&svc) && ips.into_iter().any(|i| *i == text) {
            names.push(fqdn(zone, ns, name));
        } else if is_headless(&svc) {
            let eps = catalog.endpoints(ns, name);
            for a in ready_addresses(eps.as_deref()).filter(|a| a.ip == text) {
                if let Some(label) = endpoint_label(a) {
                    names.push(format!("{label}.{}", fqdn(zone, ns, name)));
                }
            }
        }
    }
    if names.is_empty() {
        return Answer::Forward;
    }
    names.sort();
    names.dedup();
    let owner = format!("{rest}.in-addr.arpa");
    let records = names
        .into_iter()
        .map(|n| Record {
            name: owner.clone(),
            data: Data::Ptr(n),
        })
        .collect();
    select(records, Vec::new(), wanted)
}

#[cfg(test)]
pub(crate) mod tests;
