use super::*;
use k8s_openapi::api::core::v1::{EndpointPort, EndpointSubset, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub struct Fixed {
    pub services: Vec<Arc<Service>>,
    pub endpoints: Vec<Arc<Endpoints>>,
}

fn same(meta: &ObjectMeta, ns: &str, name: &str) -> bool {
    meta.namespace.as_deref() == Some(ns) && meta.name.as_deref() == Some(name)
}

impl Catalog for Fixed {
    fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>> {
        self.services
            .iter()
            .find(|s| same(&s.metadata, ns, name))
            .cloned()
    }
    fn endpoints(&self, ns: &str, name: &str) -> Option<Arc<Endpoints>> {
        self.endpoints
            .iter()
            .find(|e| same(&e.metadata, ns, name))
            .cloned()
    }
    fn services(&self) -> Vec<Arc<Service>> {
        self.services.clone()
    }
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn port(name: &str, proto: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        protocol: Some(proto.into()),
        port: number,
        ..Default::default()
    }
}

pub fn service(ns: &str, name: &str, ip: &str, ports: Vec<ServicePort>) -> Arc<Service> {
    Arc::new(Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            cluster_ip: Some(ip.into()),
            cluster_ips: Some(vec![ip.into()]),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Endpoints with ready (ip, hostname) addresses and one not-ready address, on one named port.
pub fn endpoints(
    ns: &str,
    name: &str,
    ready: &[(&str, Option<&str>)],
    port: (&str, i32),
) -> Arc<Endpoints> {
    Arc::new(Endpoints {
        metadata: meta(ns, name),
        subsets: Some(vec![EndpointSubset {
            addresses: Some(
                ready
                    .iter()
                    .map(|(ip, host)| EndpointAddress {
                        ip: ip.to_string(),
                        hostname: host.map(str::to_string),
                        ..Default::default()
                    })
                    .collect(),
            ),
            not_ready_addresses: Some(vec![EndpointAddress {
                ip: "10.244.9.9".into(),
                ..Default::default()
            }]),
            ports: Some(vec![EndpointPort {
                name: Some(port.0.into()),
                port: port.1,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        }]),
    })
}

pub fn external(ns: &str, name: &str, target: &str) -> Arc<Service> {
    Arc::new(Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(target.into()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn catalog() -> Fixed {
    let external = external("default", "docs", "Docs.Example.ORG.");
    Fixed {
        services: vec![
            service(
                "default",
                "web",
                "10.96.12.34",
                vec![port("http", "TCP", 80), port("", "TCP", 81)],
            ),
            service("db", "pg", "None", vec![port("sql", "TCP", 5432)]),
            service("db", "empty", "None", vec![port("sql", "TCP", 5432)]),
            external,
        ],
        endpoints: vec![
            endpoints(
                "db",
                "pg",
                &[("10.244.1.5", Some("pg-0")), ("10.244.2.6", None)],
                ("sql", 5433),
            ),
            endpoints("default", "web", &[("10.244.1.7", None)], ("http", 8080)),
        ],
    }
}

const ZONE: &str = "cluster.local";

fn a(name: &str, ip: [u8; 4]) -> Record {
    Record {
        name: name.into(),
        data: Data::A(Ipv4Addr::from(ip)),
    }
}

fn records(answers: Vec<Record>) -> Answer {
    Answer::Records {
        answers,
        additional: Vec::new(),
    }
}

#[test]
fn cluster_ip_service() {
    let c = catalog();
    let name = "web.default.svc.cluster.local";
    let want = records(vec![a(name, [10, 96, 12, 34])]);
    assert_eq!(lookup(ZONE, name, Wanted::Kind(Kind::A), &c), want);
    // Case and the trailing dot do not matter; the owner is the canonical lower-case name.
    assert_eq!(
        lookup(
            ZONE,
            "WEB.Default.SVC.cluster.local.",
            Wanted::Kind(Kind::A),
            &c
        ),
        want
    );
    // IPv6 is not served: the name exists, without AAAA.
    assert_eq!(lookup(ZONE, name, Wanted::Other, &c), Answer::NoData);
    // SRV of the named port only, pointing at the service name.
    let srv = Record {
        name: "_http._tcp.web.default.svc.cluster.local".into(),
        data: Data::Srv {
            port: 80,
            weight: 100,
            target: name.into(),
        },
    };
    assert_eq!(
        lookup(
            ZONE,
            "_http._tcp.web.default.svc.cluster.local",
            Wanted::Kind(Kind::Srv),
            &c
        ),
        records(vec![srv])
    );
    assert_eq!(
        lookup(
            ZONE,
            "_http._udp.web.default.svc.cluster.local",
            Wanted::Kind(Kind::Srv),
            &c
        ),
        Answer::NxDomain
    );
    // Endpoints of a ClusterIP Service have no names of their own.
    assert_eq!(
        lookup(
            ZONE,
            "10-244-1-7.web.default.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        Answer::NxDomain
    );
}

#[test]
fn headless_service() {
    let c = catalog();
    let name = "pg.db.svc.cluster.local";
    // Every ready endpoint, never the not-ready one.
    assert_eq!(
        lookup(ZONE, name, Wanted::Kind(Kind::A), &c),
        records(vec![a(name, [10, 244, 1, 5]), a(name, [10, 244, 2, 6])])
    );
    assert_eq!(
        lookup(
            ZONE,
            "pg-0.pg.db.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        records(vec![a("pg-0.pg.db.svc.cluster.local", [10, 244, 1, 5])])
    );
    assert_eq!(
        lookup(
            ZONE,
            "10-244-2-6.pg.db.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        records(vec![a(
            "10-244-2-6.pg.db.svc.cluster.local",
            [10, 244, 2, 6]
        )])
    );
    assert_eq!(
        lookup(
            ZONE,
            "10-244-9-9.pg.db.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        Answer::NxDomain
    );
    // SRV per endpoint at the endpoint's port, with the targets' addresses as additional records.
    let Answer::Records {
        answers,
        additional,
    } = lookup(
        ZONE,
        "_sql._tcp.pg.db.svc.cluster.local",
        Wanted::Kind(Kind::Srv),
        &c,
    )
    else {
        panic!("no SRV answer");
    };
    let targets: Vec<(String, u16)> = answers
        .iter()
        .filter_map(|r| match &r.data {
            Data::Srv { target, port, .. } => Some((target.clone(), *port)),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        [
            ("pg-0.pg.db.svc.cluster.local".to_string(), 5433),
            ("10-244-2-6.pg.db.svc.cluster.local".to_string(), 5433)
        ]
    );
    assert_eq!(
        additional,
        [
            a("pg-0.pg.db.svc.cluster.local", [10, 244, 1, 5]),
            a("10-244-2-6.pg.db.svc.cluster.local", [10, 244, 2, 6])
        ]
    );
    // A headless Service without endpoints exists, with no addresses.
    assert_eq!(
        lookup(
            ZONE,
            "empty.db.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        Answer::NoData
    );
}

#[test]
fn external_name_pods_and_the_rest_of_the_zone() {
    let c = catalog();
    let cname = records(vec![Record {
        name: "docs.default.svc.cluster.local".into(),
        data: Data::Cname("docs.example.org".into()),
    }]);
    assert_eq!(
        lookup(
            ZONE,
            "docs.default.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        cname
    );
    assert_eq!(
        lookup(ZONE, "docs.default.svc.cluster.local", Wanted::Other, &c),
        cname
    );
    assert_eq!(
        lookup(
            ZONE,
            "10-244-3-4.shop.pod.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        records(vec![a(
            "10-244-3-4.shop.pod.cluster.local",
            [10, 244, 3, 4]
        )])
    );
    assert_eq!(
        lookup(
            ZONE,
            "not-an-ip.shop.pod.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        Answer::NxDomain
    );
    assert_eq!(
        lookup(
            ZONE,
            "nope.default.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        Answer::NxDomain
    );
    assert_eq!(
        lookup(
            ZONE,
            "a.b.c.d.e.f.svc.cluster.local",
            Wanted::Kind(Kind::A),
            &c
        ),
        Answer::NxDomain
    );
    assert_eq!(
        lookup(ZONE, "example.com.cluster.local", Wanted::Kind(Kind::A), &c),
        Answer::NxDomain
    );
    assert_eq!(
        lookup(ZONE, "default.svc.cluster.local", Wanted::Kind(Kind::A), &c),
        Answer::NoData
    );
    assert_eq!(
        lookup(
            ZONE,
            "dns-version.cluster.local",
            Wanted::Kind(Kind::Txt),
            &c
        ),
        records(vec![Record {
            name: "dns-version.cluster.local".into(),
            data: Data::Txt("1.1.0".into()),
        }])
    );
    assert_eq!(
        lookup(ZONE, "cluster.local", Wanted::Kind(Kind::Soa), &c),
        records(vec![Record {
            name: "cluster.local".into(),
            data: Data::Soa,
        }])
    );
    // Outside the zone (including names that merely end like it): not ours.
    assert_eq!(
        lookup(ZONE, "example.com", Wanted::Kind(Kind::A), &c),
        Answer::Forward
    );
    assert_eq!(
        lookup(ZONE, "mycluster.local", Wanted::Kind(Kind::A), &c),
        Answer::Forward
    );
    assert_eq!(
        lookup(
            "k8s.example",
            "web.default.svc.k8s.example",
            Wanted::Kind(Kind::A),
            &c
        )
        .clone(),
        records(vec![a("web.default.svc.k8s.example", [10, 96, 12, 34])])
    );
}

#[test]
fn reverse_names() {
    let c = catalog();
    let ptr = |owner: &str, target: &str| {
        records(vec![Record {
            name: owner.into(),
            data: Data::Ptr(target.into()),
        }])
    };
    assert_eq!(
        lookup(
            ZONE,
            "34.12.96.10.in-addr.arpa",
            Wanted::Kind(Kind::Ptr),
            &c
        ),
        ptr("34.12.96.10.in-addr.arpa", "web.default.svc.cluster.local")
    );
    assert_eq!(
        lookup(
            ZONE,
            "5.1.244.10.in-addr.arpa.",
            Wanted::Kind(Kind::Ptr),
            &c
        ),
        ptr("5.1.244.10.in-addr.arpa", "pg-0.pg.db.svc.cluster.local")
    );
    // Not a cluster address, or not a whole address: upstream's.
    assert_eq!(
        lookup(ZONE, "1.0.0.127.in-addr.arpa", Wanted::Kind(Kind::Ptr), &c),
        Answer::Forward
    );
    assert_eq!(
        lookup(ZONE, "96.10.in-addr.arpa", Wanted::Kind(Kind::Ptr), &c),
        Answer::Forward
    );
    assert_eq!(
        lookup(ZONE, "x.12.96.10.in-addr.arpa", Wanted::Kind(Kind::Ptr), &c),
        Answer::Forward
    );
}
