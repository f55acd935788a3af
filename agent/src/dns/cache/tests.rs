use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use simple_dns::rdata::{A, RData, SOA};
use simple_dns::{CLASS, Name, Packet, PacketFlag, QTYPE, Question, RCODE, ResourceRecord, TYPE};

use super::{CAPACITY, Cache, MAX_TTL};

fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
    let mut p = Packet::new_query(id);
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(qtype),
        CLASS::IN.into(),
        false,
    ));
    p.build_bytes_vec().expect("query")
}

/// An upstream reply to `query` with A records of `ttl`.
fn answer(query: &[u8], ttl: u32, ips: &[Ipv4Addr]) -> Vec<u8> {
    let q = Packet::parse(query).expect("parse");
    let mut r = Packet::new_reply(q.id());
    r.questions = q.questions.clone();
    let name = q.questions[0].qname.clone();
    for ip in ips {
        r.answers.push(ResourceRecord::new(
            name.clone(),
            CLASS::IN,
            ttl,
            RData::A(A {
                address: u32::from(*ip),
            }),
        ));
    }
    r.build_bytes_vec_compressed().expect("reply")
}

fn negative(query: &[u8], rcode: RCODE, soa_ttl: u32, minimum: u32) -> Vec<u8> {
    let q = Packet::parse(query).expect("parse");
    let mut r = Packet::new_reply(q.id());
    r.questions = q.questions.clone();
    *r.rcode_mut() = rcode;
    r.name_servers.push(ResourceRecord::new(
        Name::new_unchecked("example.org"),
        CLASS::IN,
        soa_ttl,
        RData::SOA(SOA {
            mname: Name::new_unchecked("ns.example.org"),
            rname: Name::new_unchecked("hostmaster.example.org"),
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum,
        }),
    ));
    r.build_bytes_vec_compressed().expect("reply")
}

fn ttls(message: &[u8]) -> Vec<u32> {
    let p = Packet::parse(message).expect("parse");
    p.answers
        .iter()
        .chain(&p.name_servers)
        .map(|r| r.ttl)
        .collect()
}

#[test]
fn a_hit_is_made_for_the_asking_query_with_ttls_counted_down() {
    let cache = Cache::default();
    let t0 = Instant::now();
    let q = query(7, "www.example.org", TYPE::A);
    let ip = Ipv4Addr::new(192, 0, 2, 1);
    cache.put_at(&q, &answer(&q, 300, &[ip]), t0);

    let asking = query(4242, "WWW.Example.ORG", TYPE::A);
    let hit = cache
        .get_at(&asking, 512, t0 + Duration::from_secs(10))
        .expect("a hit");
    let p = Packet::parse(&hit).expect("parse");
    assert_eq!(p.id(), 4242);
    assert_eq!(p.questions[0].qname.to_string(), "WWW.Example.ORG");
    assert_eq!(ttls(&hit), vec![MAX_TTL - 10], "capped at 30 s, 10 s gone");
    let RData::A(a) = &p.answers[0].rdata else {
        panic!("not an A record")
    };
    assert_eq!(Ipv4Addr::from(a.address), ip);

    // Another type of the same name is another entry.
    assert!(
        cache
            .get_at(&query(1, "www.example.org", TYPE::AAAA), 512, t0)
            .is_none()
    );
    // Gone once expired, and dropped from the map.
    assert!(
        cache
            .get_at(&asking, 512, t0 + Duration::from_secs(30))
            .is_none()
    );
    assert_eq!(cache.len(), 0);
}

#[test]
fn the_smallest_ttl_counts_and_a_hit_over_the_size_limit_is_a_miss() {
    let cache = Cache::default();
    let t0 = Instant::now();
    let q = query(1, "many.example.org", TYPE::A);
    let ips: Vec<Ipv4Addr> = (1..=40).map(|i| Ipv4Addr::new(192, 0, 2, i)).collect();
    let bytes = answer(&q, 20, &ips);
    let mut reply = Packet::parse(&bytes).expect("parse");
    reply.answers[3].ttl = 4;
    let reply = reply.build_bytes_vec_compressed().expect("build");
    cache.put_at(&q, &reply, t0);
    assert!(
        cache.get_at(&q, 512, t0).is_none(),
        "40 A records exceed 512 bytes"
    );
    assert!(cache.get_at(&q, 1232, t0).is_some());
    assert!(
        cache
            .get_at(&q, 1232, t0 + Duration::from_secs(4))
            .is_none()
    );
}

#[test]
fn negative_answers_live_for_the_soa_minimum() {
    let cache = Cache::default();
    let t0 = Instant::now();
    let q = query(1, "nothing.example.org", TYPE::A);
    cache.put_at(&q, &negative(&q, RCODE::NameError, 60, 10), t0);
    let hit = cache
        .get_at(&q, 512, t0 + Duration::from_secs(3))
        .expect("NXDOMAIN kept");
    let p = Packet::parse(&hit).expect("parse");
    assert_eq!(p.rcode(), RCODE::NameError);
    assert_eq!(ttls(&hit), vec![7], "no record outlives the entry");
    assert!(
        cache
            .get_at(&q, 512, t0 + Duration::from_secs(10))
            .is_none()
    );

    // NODATA (no error, no answers) too.
    let q = query(2, "v4only.example.org", TYPE::AAAA);
    cache.put_at(&q, &negative(&q, RCODE::NoError, 5, 300), t0);
    assert!(cache.get_at(&q, 512, t0 + Duration::from_secs(4)).is_some());
    assert!(cache.get_at(&q, 512, t0 + Duration::from_secs(5)).is_none());
}

#[test]
fn failures_truncated_and_foreign_answers_are_not_kept() {
    let cache = Cache::default();
    let q = query(1, "www.example.org", TYPE::A);
    let ip = [Ipv4Addr::new(192, 0, 2, 1)];

    cache.put(&q, &negative(&q, RCODE::ServerFailure, 60, 60));
    cache.put(&q, &negative(&q, RCODE::Refused, 60, 60));
    // No SOA: nothing says how long the name stays absent.
    let bytes = negative(&q, RCODE::NameError, 60, 60);
    let mut bare = Packet::parse(&bytes).expect("parse");
    bare.name_servers.clear();
    cache.put(&q, &bare.build_bytes_vec().expect("build"));
    // TTL 0: not to be kept.
    cache.put(&q, &answer(&q, 0, &ip));
    // Truncated.
    let bytes = answer(&q, 60, &ip);
    let mut tc = Packet::parse(&bytes).expect("parse");
    tc.set_flags(PacketFlag::TRUNCATION);
    cache.put(&q, &tc.build_bytes_vec().expect("build"));
    // About another name.
    let other = query(1, "evil.example.org", TYPE::A);
    cache.put(&q, &answer(&other, 60, &ip));
    // Not a DNS message.
    cache.put(&q, b"garbage");
    cache.put(b"", &answer(&q, 60, &ip));

    assert_eq!(cache.len(), 0);
    assert!(cache.get(&q, 512).is_none());
    assert!(cache.get(b"\x00\x01", 512).is_none());
}

#[test]
fn a_full_cache_makes_room() {
    let cache = Cache::default();
    let t0 = Instant::now();
    let ip = [Ipv4Addr::new(192, 0, 2, 1)];
    for i in 0..=CAPACITY {
        let q = query(1, &format!("n{i}.example.org"), TYPE::A);
        let ttl = u32::try_from(i % 25 + 1).expect("small");
        cache.put_at(&q, &answer(&q, ttl, &ip), t0);
    }
    assert!(cache.len() <= CAPACITY);
    assert!(
        cache.len() >= CAPACITY / 2,
        "only the entries closest to expiry go"
    );
    let last = query(1, &format!("n{CAPACITY}.example.org"), TYPE::A);
    assert!(
        cache.get_at(&last, 512, t0).is_some(),
        "the newest entry is in"
    );
}
