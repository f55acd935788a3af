use super::cache::Cache;
use super::*;
use simple_dns::Question;

fn query(name: &str, qtype: TYPE, edns: Option<u16>) -> Vec<u8> {
    let mut p = Packet::new_query(0x4242);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new(name).unwrap_or_else(|e| panic!("{e}")),
        qtype.into(),
        CLASS::IN.into(),
        false,
    ));
    if let Some(size) = edns {
        *p.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: size,
            version: 0,
        });
    }
    p.build_bytes_vec().unwrap_or_else(|e| panic!("{e}"))
}

fn message(r: Reply) -> Vec<u8> {
    match r {
        Reply::Message(m) => m,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn answers_cluster_names() {
    let c = zone::tests::catalog();
    let m = message(respond(
        "cluster.local",
        &query("web.default.svc.cluster.local", TYPE::A, None),
        Transport::Udp,
        &c,
    ));
    let p = Packet::parse(&m).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.id(), 0x4242);
    assert_eq!(p.rcode(), RCODE::NoError);
    assert!(p.has_flags(
        PacketFlag::RESPONSE | PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_DESIRED
    ));
    assert_eq!(p.questions.len(), 1);
    assert_eq!(p.answers.len(), 1);
    assert_eq!(p.answers[0].ttl, TTL);
    assert_eq!(
        p.answers[0].rdata,
        RData::A(A {
            address: u32::from(Ipv4Addr::new(10, 96, 12, 34))
        })
    );

    // NXDOMAIN and NODATA carry the zone's SOA for negative caching.
    for (name, qtype, rcode) in [
        ("nope.default.svc.cluster.local", TYPE::A, RCODE::NameError),
        ("web.default.svc.cluster.local", TYPE::AAAA, RCODE::NoError),
    ] {
        let m = message(respond(
            "cluster.local",
            &query(name, qtype, None),
            Transport::Udp,
            &c,
        ));
        let p = Packet::parse(&m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.rcode(), rcode, "{name}");
        assert!(p.answers.is_empty());
        assert_eq!(p.name_servers.len(), 1);
        assert!(matches!(p.name_servers[0].rdata, RData::SOA(_)));
    }
}

#[test]
fn other_names_and_odd_messages() {
    let c = zone::tests::catalog();
    assert_eq!(
        respond(
            "cluster.local",
            &query("example.com", TYPE::A, None),
            Transport::Udp,
            &c
        ),
        Reply::Forward
    );
    // Too short, or a response: no answer at all.
    assert_eq!(
        respond("cluster.local", &[0u8; 5], Transport::Udp, &c),
        Reply::Drop
    );
    let mut response = query("web.default.svc.cluster.local", TYPE::A, None);
    response[2] |= 0x80;
    assert_eq!(
        respond("cluster.local", &response, Transport::Udp, &c),
        Reply::Drop
    );
    // Two questions: FORMERR.
    let mut p = Packet::new_query(7);
    for n in ["a.cluster.local", "b.cluster.local"] {
        p.questions.push(Question::new(
            Name::new(n).unwrap_or_else(|e| panic!("{e}")),
            TYPE::A.into(),
            CLASS::IN.into(),
            false,
        ));
    }
    let m = message(respond(
        "cluster.local",
        &p.build_bytes_vec().unwrap_or_else(|e| panic!("{e}")),
        Transport::Udp,
        &c,
    ));
    assert_eq!(
        Packet::parse(&m).map(|p| p.rcode()).ok(),
        Some(RCODE::FormatError)
    );
    // Garbage after a valid header: not understood here, the upstream decides.
    let mut junk = query("x.cluster.local", TYPE::A, None);
    junk.truncate(14);
    assert_eq!(
        respond("cluster.local", &junk, Transport::Udp, &c),
        Reply::Forward
    );
}

#[test]
fn large_answers_are_truncated_over_udp_only() {
    let ready: Vec<(String, Option<&str>)> =
        (0..60).map(|i| (format!("10.244.7.{i}"), None)).collect();
    let ready: Vec<(&str, Option<&str>)> = ready.iter().map(|(ip, h)| (ip.as_str(), *h)).collect();
    let c = zone::tests::Fixed {
        services: vec![zone::tests::service("default", "many", "None", Vec::new())],
        endpoints: vec![zone::tests::endpoints("default", "many", &ready, ("x", 1))],
    };
    let q = query("many.default.svc.cluster.local", TYPE::A, None);
    let udp = message(respond("cluster.local", &q, Transport::Udp, &c));
    assert!(udp.len() <= 512);
    let p = Packet::parse(&udp).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.has_flags(PacketFlag::TRUNCATION));
    assert!(p.answers.is_empty());
    // With EDNS the client takes up to 1232 bytes: 60 A records (16 bytes each, compressed) fit.
    let edns = message(respond(
        "cluster.local",
        &query("many.default.svc.cluster.local", TYPE::A, Some(4096)),
        Transport::Udp,
        &c,
    ));
    let p = Packet::parse(&edns).unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.has_flags(PacketFlag::TRUNCATION));
    assert_eq!(p.answers.len(), 60);
    let tcp = message(respond("cluster.local", &q, Transport::Tcp, &c));
    assert_eq!(Packet::parse(&tcp).map(|p| p.answers.len()).ok(), Some(60));
}

#[test]
fn settings_parse() {
    assert_eq!(
        upstreams(
            "nameserver 127.0.0.53\nnameserver 10.96.0.10\n# nameserver 1.2.3.4\nnameserver fe80::1%eth0\nsearch x\n",
            Ipv4Addr::new(10, 96, 0, 10)
        ),
        vec![
            "127.0.0.53:53".parse().unwrap_or_else(|e| panic!("{e}")),
            "[fe80::1]:53".parse().unwrap_or_else(|e| panic!("{e}"))
        ]
    );
    assert_eq!("none".parse::<Address>(), Ok(Address(None)));
    assert_eq!(
        "10.96.0.10".parse::<Address>(),
        Ok(Address(Some(Ipv4Addr::new(10, 96, 0, 10))))
    );
    assert!("127.0.0.1".parse::<Address>().is_err());
    assert!("10.96.0".parse::<Address>().is_err());
    assert_eq!(parse_domain("Cluster.local.").ok(), None);
    assert_eq!(
        parse_domain("k8s.example.").ok().as_deref(),
        Some("k8s.example")
    );
    assert!(parse_domain("bad..domain").is_err());
}

/// Answers every query with the query's id and name and the address 192.0.2.1.
fn upstream_answer(q: &[u8]) -> Vec<u8> {
    let q = Packet::parse(q).unwrap_or_else(|e| panic!("{e}"));
    let mut r = Packet::new_reply(q.id());
    r.questions = q.questions.clone();
    r.answers.push(ResourceRecord::new(
        q.questions[0].qname.clone(),
        CLASS::IN,
        60,
        RData::A(A {
            address: u32::from(Ipv4Addr::new(192, 0, 2, 1)),
        }),
    ));
    r.build_bytes_vec().unwrap_or_else(|e| panic!("{e}"))
}

/// A fake upstream on loopback (UDP and TCP, answering with [`upstream_answer`]).
async fn fake_upstream() -> (SocketAddr, SocketAddr) {
    let udp = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let tcp = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addrs = (
        udp.local_addr().unwrap_or_else(|e| panic!("{e}")),
        tcp.local_addr().unwrap_or_else(|e| panic!("{e}")),
    );
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            let _ = udp.send_to(&upstream_answer(&buf[..n]), peer).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = tcp.accept().await {
            if let Ok(Some(q)) = read_frame(&mut conn).await {
                let _ = write_frame(&mut conn, &upstream_answer(&q)).await;
            }
        }
    });
    addrs
}

/// Forwarding skips an upstream that never answers and relays the next one's answer as is.
#[tokio::test]
async fn forwards_to_the_first_upstream_that_answers() {
    let silent = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (up_addr, tcp_addr) = fake_upstream().await;
    let q = query("example.com", TYPE::A, None);
    let ups = [
        silent.local_addr().unwrap_or_else(|e| panic!("{e}")),
        up_addr,
    ];
    let r = forward_udp(&q, &ups)
        .await
        .unwrap_or_else(|| panic!("no answer"));
    let p = Packet::parse(&r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.id(), 0x4242);
    assert_eq!(p.answers.len(), 1);
    let r = forward_tcp(&q, &[tcp_addr])
        .await
        .unwrap_or_else(|| panic!("no TCP answer"));
    assert_eq!(Packet::parse(&r).map(|p| p.answers.len()).ok(), Some(1));
    // Nobody answers: SERVFAIL.
    let r = ask_upstream(
        Reply::Forward,
        &q,
        &ups[..1],
        &Cache::default(),
        Transport::Udp,
    )
    .await
    .unwrap_or_else(|| panic!("no failure reply"));
    assert_eq!(
        Packet::parse(&r).map(|p| (p.id(), p.rcode())).ok(),
        Some((0x4242, RCODE::ServerFailure))
    );
}

/// An ExternalName's CNAME comes with the target's addresses: from the zone when the target is a cluster
/// name, from the upstream servers otherwise (CoreDNS's behaviour).
#[tokio::test]
async fn external_names_are_followed() {
    let mut c = zone::tests::catalog();
    c.services.push(zone::tests::external(
        "default",
        "alias",
        "web.default.svc.cluster.local",
    ));
    let q = query("alias.default.svc.cluster.local", TYPE::A, None);
    let m = message(respond("cluster.local", &q, Transport::Udp, &c));
    let p = Packet::parse(&m).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(p.answers[0].rdata, RData::CNAME(_)));
    assert_eq!(
        p.answers[1].rdata,
        RData::A(A {
            address: u32::from(Ipv4Addr::new(10, 96, 12, 34))
        })
    );

    let q = query("docs.default.svc.cluster.local", TYPE::A, None);
    let step = respond("cluster.local", &q, Transport::Udp, &c);
    assert!(matches!(step, Reply::Chase { .. }), "{step:?}");
    let (udp, _) = fake_upstream().await;
    let r = ask_upstream(step, &q, &[udp], &Cache::default(), Transport::Udp)
        .await
        .unwrap_or_else(|| panic!("no reply"));
    let p = Packet::parse(&r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.id(), 0x4242);
    assert_eq!(p.answers.len(), 2);
    assert_eq!(p.answers[1].name.to_string(), "docs.example.org");
    // A CNAME question is answered with the CNAME alone; no upstream: the CNAME alone.
    assert!(matches!(
        respond(
            "cluster.local",
            &query("docs.default.svc.cluster.local", TYPE::CNAME, None),
            Transport::Udp,
            &c
        ),
        Reply::Message(_)
    ));
    let silent = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let step = respond("cluster.local", &q, Transport::Udp, &c);
    let r = ask_upstream(
        step,
        &q,
        &[silent.local_addr().unwrap_or_else(|e| panic!("{e}"))],
        &Cache::default(),
        Transport::Udp,
    )
    .await
    .unwrap_or_else(|| panic!("no reply"));
    assert_eq!(Packet::parse(&r).map(|p| p.answers.len()).ok(), Some(1));
}

/// A forwarded answer is served from the cache while it lives, with the asking client's id: a second query
/// gets it although no upstream answers any more.
#[tokio::test]
async fn forwarded_answers_are_cached() {
    let (up, _) = fake_upstream().await;
    let silent = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let silent = [silent.local_addr().unwrap_or_else(|e| panic!("{e}"))];
    let cache = Cache::default();
    let q = query("example.com", TYPE::A, None);
    let first = ask_upstream(Reply::Forward, &q, &[up], &cache, Transport::Udp)
        .await
        .unwrap_or_else(|| panic!("no answer"));
    assert_eq!(Packet::parse(&first).map(|p| p.answers.len()).ok(), Some(1));

    let mut again = q.clone();
    again[..2].copy_from_slice(&0x1717u16.to_be_bytes());
    let r = ask_upstream(Reply::Forward, &again, &silent, &cache, Transport::Udp)
        .await
        .unwrap_or_else(|| panic!("no answer"));
    let p = Packet::parse(&r).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (p.id(), p.rcode(), p.answers.len()),
        (0x1717, RCODE::NoError, 1)
    );
    // Without the cache the same query fails.
    let r = ask_upstream(
        Reply::Forward,
        &again,
        &silent,
        &Cache::default(),
        Transport::Udp,
    )
    .await
    .unwrap_or_else(|| panic!("no failure reply"));
    assert_eq!(
        Packet::parse(&r).map(|p| p.rcode()).ok(),
        Some(RCODE::ServerFailure)
    );
}

/// The server itself on a loopback port, over UDP and TCP.
#[tokio::test]
async fn serves_udp_and_tcp() {
    let settings = Settings {
        ip: Ipv4Addr::new(127, 0, 0, 1),
        domain: "cluster.local".into(),
        resolv_conf: "/nonexistent".into(),
        port: 0,
    };
    let catalog: Arc<dyn Catalog + Send + Sync> = Arc::new(zone::tests::catalog());
    let addr = serve(settings, catalog)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .addr;
    let q = query("_sql._tcp.pg.db.svc.cluster.local", TYPE::SRV, None);
    let client = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .send_to(&q, addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let p = Packet::parse(&buf[..n]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((p.answers.len(), p.additional_records.len()), (2, 2));

    let mut conn = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..2 {
        write_frame(&mut conn, &q)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let r = read_frame(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("closed"));
        assert_eq!(Packet::parse(&r).map(|p| p.answers.len()).ok(), Some(2));
    }
    // No upstream configured: names outside the zone get SERVFAIL rather than silence.
    client
        .send_to(&query("example.com", TYPE::A, None), addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Packet::parse(&buf[..n]).map(|p| p.rcode()).ok(),
        Some(RCODE::ServerFailure)
    );
}
