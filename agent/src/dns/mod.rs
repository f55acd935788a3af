//! Cluster DNS, served by the agent on every node, as NodeLocal DNSCache does beside CoreDNS: the node holds
//! the cluster DNS address (`--cluster-dns`, the kubelet's `clusterDNS`, 10.96.0.10 by default) as a local
//! address ([`link`]) and answers on its port 53 (UDP and TCP). Pods with `dnsPolicy: ClusterFirst` name
//! it in their resolv.conf, so their queries never leave the node.
//!
//! Names in the cluster domain (and the reverse names of cluster IPs) are answered from the Services and
//! Endpoints the agent already watches for its service proxy ([`zone`]); every other name is forwarded to
//! the nameservers of `--resolv-conf` (the host's), over the transport the query came on.

pub mod cache;
pub mod link;
pub mod zone;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use simple_dns::rdata::{A, CNAME, OPT, PTR, RData, SOA, SRV, TXT};
use simple_dns::{
    CLASS, Name, OPCODE, Packet, PacketFlag, QCLASS, QTYPE, RCODE, ResourceRecord, TYPE,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use zone::{Answer, Catalog, Data, Kind, Record, Wanted};

/// TTL of cluster records and of negative answers (CoreDNS's `kubernetes` plugin default).
pub const TTL: u32 = 5;
/// How long one upstream server gets to answer a forwarded query.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries (UDP) and TCP connections in flight; beyond that queries get SERVFAIL.
const MAX_IN_FLIGHT: usize = 256;
/// A TCP client's idle time between queries before the connection is closed (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The address and the upstream list are checked this often (someone may delete the address; the host's
/// resolv.conf may change).
const MAINTAIN: Duration = Duration::from_secs(30);
/// The UDP payload size advertised with EDNS (the DNS flag day 2020 value).
const EDNS_UDP_SIZE: u16 = 1232;

/// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ip: Ipv4Addr,
    /// The cluster domain (`cluster.local`), lower case, no trailing dot.
    pub domain: String,
    /// The upstream nameservers' resolv.conf.
    pub resolv_conf: PathBuf,
    /// Port to listen on (53; tests use another).
    pub port: u16,
}

/// `--cluster-dns`: an IPv4 address, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address(pub Option<Ipv4Addr>);

impl std::str::FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" | "none" => Ok(Address(None)),
            a => a
                .parse::<Ipv4Addr>()
                .ok()
                .filter(|ip| {
                    !ip.is_unspecified()
                        && !ip.is_loopback()
                        && !ip.is_multicast()
                        && !ip.is_broadcast()
                })
                .map(|ip| Address(Some(ip)))
                .ok_or_else(|| format!("{a:?} is not a unicast IPv4 address (or `none`)")),
        }
    }
}

/// `--cluster-domain`: a DNS name of lower-case labels (a trailing dot is dropped).
pub fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.trim().trim_end_matches('.').to_string();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if d.is_empty() || d.len() > 253 || !d.split('.').all(label_ok) {
        return Err(format!(
            "{s:?} is not a lower-case DNS domain such as cluster.local"
        ));
    }
    Ok(d)
}

/// The nameservers of a resolv.conf, port 53, without `skip` (our own address: no forwarding loop).
pub fn upstreams(resolv_conf: &str, skip: Ipv4Addr) -> Vec<SocketAddr> {
    crate::pods::files::parse_resolv(resolv_conf)
        .nameservers
        .iter()
        .filter_map(|a| a.split('%').next()?.parse::<IpAddr>().ok())
        .filter(|ip| *ip != IpAddr::V4(skip))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// A running server's shared state.
struct Server {
    settings: Settings,
    catalog: Arc<dyn Catalog + Send + Sync>,
    upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    /// Answers of the upstream servers.
    cache: Arc<cache::Cache>,
    in_flight: Arc<Semaphore>,
    /// Where it listens.
    #[cfg_attr(not(test), allow(dead_code))]
    addr: SocketAddr,
}

/// Put the address on its interface, bind UDP and TCP port 53 on it and serve until the agent stops.
/// Errors here (no permission to create the interface, the port taken) are the caller's to report.
pub async fn start(
    settings: Settings,
    catalog: Arc<dyn Catalog + Send + Sync>,
) -> std::io::Result<()> {
    let ip = settings.ip;
    tokio::task::spawn_blocking(move || link::ensure(ip))
        .await
        .map_err(std::io::Error::other)??;
    let server = serve(settings, catalog).await?;
    tokio::spawn(server.maintain());
    Ok(())
}

/// Bind UDP and TCP on the settings' address and port and answer there (port 0: any free port, both
/// transports on the same one).
async fn serve(
    settings: Settings,
    catalog: Arc<dyn Catalog + Send + Sync>,
) -> std::io::Result<Arc<Server>> {
    let udp = UdpSocket::bind(SocketAddr::new(IpAddr::V4(settings.ip), settings.port)).await?;
    let addr = udp.local_addr()?;
    let tcp = TcpListener::bind(addr).await?;
    let server = Arc::new(Server {
        upstreams: RwLock::new(Arc::new(
            read_upstreams(&settings.resolv_conf, settings.ip).await,
        )),
        settings,
        catalog,
        cache: Arc::default(),
        in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        addr,
    });
    tracing::info!(
        %addr,
        domain = %server.settings.domain,
        upstreams = ?server.upstreams(),
        "cluster DNS serving"
    );
    tokio::spawn(server.clone().serve_udp(udp));
    tokio::spawn(server.clone().serve_tcp(tcp));
    Ok(server)
}

async fn read_upstreams(path: &Path, skip: Ipv4Addr) -> Vec<SocketAddr> {
    let text = tokio::fs::read_to_string(path).await.unwrap_or_default();
    upstreams(&text, skip)
}

impl Server {
    fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        self.upstreams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn maintain(self: Arc<Self>) {
        let mut tick = tokio::time::interval(MAINTAIN);
        tick.tick().await;
        loop {
            tick.tick().await;
            let ip = self.settings.ip;
            match tokio::task::spawn_blocking(move || link::ensure(ip)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cluster DNS address"),
                Err(e) => tracing::warn!(error = %e, "cluster DNS address"),
            }
            let fresh = read_upstreams(&self.settings.resolv_conf, self.settings.ip).await;
            if *self.upstreams() != fresh {
                tracing::info!(upstreams = ?fresh, "cluster DNS upstreams changed");
                *self.upstreams.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
            }
        }
    }

    async fn serve_udp(self: Arc<Self>, sock: UdpSocket) {
        let sock = Arc::new(sock);
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = match sock.recv_from(&mut buf).await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster DNS: UDP receive");
                    continue;
                }
            };
            let query = &buf[..n];
            match respond(
                &self.settings.domain,
                query,
                Transport::Udp,
                self.catalog.as_ref(),
            ) {
                Reply::Message(m) => {
                    let _ = sock.send_to(&m, peer).await;
                }
                Reply::Drop => {}
                upstream => {
                    let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                        if let Some(m) = failure(query, RCODE::ServerFailure) {
                            let _ = sock.send_to(&m, peer).await;
                        }
                        continue;
                    };
                    let (query, sock, ups) = (query.to_vec(), sock.clone(), self.upstreams());
                    let cache = self.cache.clone();
                    tokio::spawn(async move {
                        let asked = ask_upstream(upstream, &query, &ups, &cache, Transport::Udp);
                        if let Some(r) = asked.await {
                            let _ = sock.send_to(&r, peer).await;
                        }
                        drop(permit);
                    });
                }
            }
        }
    }

    async fn serve_tcp(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (conn, _) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster DNS: TCP accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                this.tcp_connection(conn).await;
                drop(permit);
            });
        }
    }

    /// Length-prefixed queries on one connection, answered in order until the client goes quiet.
    async fn tcp_connection(&self, mut conn: TcpStream) {
        while let Ok(Ok(Some(query))) = tokio::time::timeout(TCP_IDLE, read_frame(&mut conn)).await
        {
            let reply = match respond(
                &self.settings.domain,
                &query,
                Transport::Tcp,
                self.catalog.as_ref(),
            ) {
                Reply::Message(m) => Some(m),
                Reply::Drop => None,
                upstream => {
                    let ups = self.upstreams();
                    ask_upstream(upstream, &query, &ups, &self.cache, Transport::Tcp).await
                }
            };
            let Some(reply) = reply else { return };
            if write_frame(&mut conn, &reply).await.is_err() {
                return;
            }
        }
    }
}

/// The reply to `query` that needs the upstream servers: the query forwarded as it is, or an ExternalName's
/// CNAME completed with the target's records. SERVFAIL when no upstream answers a forwarded query. Answers
/// come from `cache` while they live there, and go into it.
async fn ask_upstream(
    step: Reply,
    query: &[u8],
    upstreams: &[SocketAddr],
    cache: &cache::Cache,
    transport: Transport,
) -> Option<Vec<u8>> {
    let ask = |q: Vec<u8>, limit: usize| async move {
        if let Some(hit) = cache.get(&q, limit) {
            return Some(hit);
        }
        let answer = match transport {
            Transport::Udp => forward_udp(&q, upstreams).await,
            Transport::Tcp => forward_tcp(&q, upstreams).await,
        };
        if let Some(a) = &answer {
            cache.put(&q, a);
        }
        answer
    };
    match step {
        Reply::Forward => match ask(query.to_vec(), size_limit(query, transport)).await {
            Some(r) => Some(r),
            None => failure(query, RCODE::ServerFailure),
        },
        Reply::Chase {
            reply,
            query: target,
            limit,
        } => Some(match ask(target, usize::from(u16::MAX)).await {
            Some(found) => complete(&reply, &found, limit).unwrap_or(reply),
            // The CNAME alone: the client may still resolve the target itself.
            None => reply,
        }),
        Reply::Message(m) => Some(m),
        Reply::Drop => None,
    }
}

/// `reply` with the answer records of `upstream` appended (what the target name resolved to); None when
/// `upstream` is not a usable answer. Over `limit`, the truncated form.
fn complete(reply: &[u8], upstream: &[u8], limit: usize) -> Option<Vec<u8>> {
    let found = Packet::parse(upstream).ok()?;
    if found.rcode() != RCODE::NoError {
        return None;
    }
    let mut out = Packet::parse(reply).ok()?;
    out.answers.extend(found.answers);
    let bytes = out.build_bytes_vec_compressed().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    out.answers.clear();
    out.set_flags(PacketFlag::TRUNCATION);
    out.build_bytes_vec_compressed().ok()
}

async fn read_frame(conn: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    if let Err(e) = conn.read_exact(&mut len).await {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Ok(None),
            _ => Err(e),
        };
    }
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut msg).await?;
    Ok(Some(msg))
}

async fn write_frame(conn: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    conn.write_all(&out).await
}

/// Ask each upstream in turn over UDP; the first answer with the query's id wins.
async fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let bind: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(sock) = UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.connect(up).await.is_err() || sock.send(query).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 65535];
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            loop {
                let n = sock.recv(&mut buf).await.ok()?;
                if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
                    return Some(n);
                }
            }
        })
        .await;
        if let Ok(Some(n)) = got {
            buf.truncate(n);
            return Some(buf);
        }
        tracing::debug!(upstream = %up, "cluster DNS: upstream did not answer");
    }
    None
}

/// Ask each upstream in turn over TCP.
async fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let r = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            let mut conn = TcpStream::connect(up).await.ok()?;
            write_frame(&mut conn, query).await.ok()?;
            read_frame(&mut conn).await.ok()?
        })
        .await;
        if let Ok(Some(m)) = r {
            return Some(m);
        }
        tracing::debug!(upstream = %up, "cluster DNS: upstream did not answer over TCP");
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Message(Vec<u8>),
    /// Not ours: pass the query, unchanged, to an upstream server.
    Forward,
    /// An ExternalName Service's CNAME (`reply`) to a name outside the cluster, to be completed with what the
    /// upstream servers answer to `query` (the target, of the asked type), as CoreDNS does; `limit` is the
    /// client's size limit.
    Chase {
        reply: Vec<u8>,
        query: Vec<u8>,
        limit: usize,
    },
    /// Not a query at all (a response, less than a header): no answer.
    Drop,
}

/// A reply with only the header and question of `query` and `rcode`; None if `query` has no header.
pub fn failure(query: &[u8], rcode: RCODE) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    let id = u16::from_be_bytes([query[0], query[1]]);
    let mut reply = Packet::new_reply(id);
    if let Ok(q) = Packet::parse(query) {
        if q.has_flags(PacketFlag::RECURSION_DESIRED) {
            reply.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        reply.questions = q.questions;
    }
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    *reply.rcode_mut() = rcode;
    reply.build_bytes_vec_compressed().ok()
}

fn wanted(q: QTYPE) -> Wanted {
    match q {
        QTYPE::ANY => Wanted::Any,
        QTYPE::TYPE(TYPE::A) => Wanted::Kind(Kind::A),
        QTYPE::TYPE(TYPE::CNAME) => Wanted::Kind(Kind::Cname),
        QTYPE::TYPE(TYPE::SRV) => Wanted::Kind(Kind::Srv),
        QTYPE::TYPE(TYPE::PTR) => Wanted::Kind(Kind::Ptr),
        QTYPE::TYPE(TYPE::TXT) => Wanted::Kind(Kind::Txt),
        QTYPE::TYPE(TYPE::SOA) => Wanted::Kind(Kind::Soa),
        _ => Wanted::Other,
    }
}

/// The answer to one message: built here for the cluster's names, else forwarded or dropped.
pub fn respond(domain: &str, query: &[u8], transport: Transport, catalog: &dyn Catalog) -> Reply {
    // A response, or no header: nothing to say.
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Reply::Drop;
    }
    let Ok(q) = Packet::parse(query) else {
        // A question this parser does not know (an unassigned type, say) is not the cluster's.
        return Reply::Forward;
    };
    if q.opcode() != OPCODE::StandardQuery {
        return failure(query, RCODE::NotImplemented).map_or(Reply::Drop, Reply::Message);
    }
    let [question] = q.questions.as_slice() else {
        return failure(query, RCODE::FormatError).map_or(Reply::Drop, Reply::Message);
    };
    if !matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY) {
        return Reply::Forward;
    }
    let qname = question.qname.to_string();
    let mut answer = zone::lookup(domain, &qname, wanted(question.qtype), catalog);
    if answer == Answer::Forward {
        return Reply::Forward;
    }
    let limit = limit(&q, transport);
    // An ExternalName's CNAME is followed one step: in the zone here, outside it by the upstream servers.
    let mut chase = None;
    if let Answer::Records { answers, .. } = &mut answer
        && let [
            Record {
                data: Data::Cname(target),
                ..
            },
        ] = answers.as_slice()
        && !matches!(question.qtype, QTYPE::ANY | QTYPE::TYPE(TYPE::CNAME))
    {
        match zone::lookup(domain, target, wanted(question.qtype), catalog) {
            Answer::Forward => chase = target_query(target, question.qtype),
            Answer::Records { answers: more, .. } => answers.extend(more),
            _ => {}
        }
    }
    if let Some(target) = chase {
        return match build(domain, &q, &answer, false) {
            Some(reply) => Reply::Chase {
                reply,
                query: target,
                limit,
            },
            None => failure(query, RCODE::ServerFailure).map_or(Reply::Drop, Reply::Message),
        };
    }
    match build(domain, &q, &answer, false) {
        Some(m) if m.len() <= limit => Reply::Message(m),
        // Too big for this UDP client: an empty truncated reply sends it to TCP.
        Some(_) => build(domain, &q, &answer, true).map_or(Reply::Drop, Reply::Message),
        None => failure(query, RCODE::ServerFailure).map_or(Reply::Drop, Reply::Message),
    }
}

/// The largest reply `q`'s sender takes: 512 bytes over UDP, or what its EDNS record says (at most ours);
/// anything over TCP.
fn limit(q: &Packet<'_>, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => q.opt().map_or(512, |o| {
            usize::from(o.udp_packet_size.clamp(512, EDNS_UDP_SIZE))
        }),
    }
}

/// [`limit`] of a raw query (512 over UDP when it does not parse).
fn size_limit(query: &[u8], transport: Transport) -> usize {
    match Packet::parse(query) {
        Ok(q) => limit(&q, transport),
        Err(_) if transport == Transport::Tcp => usize::from(u16::MAX),
        Err(_) => 512,
    }
}

/// A recursive query for `target` of type `qtype` (EDNS, so large answers come over UDP).
fn target_query(target: &str, qtype: QTYPE) -> Option<Vec<u8>> {
    let mut p = Packet::new_query(rand_id());
    p.set_flags(PacketFlag::RECURSION_DESIRED);
    p.questions.push(simple_dns::Question::new(
        Name::new(target).ok()?,
        qtype,
        CLASS::IN.into(),
        false,
    ));
    *p.opt_mut() = Some(OPT {
        opt_codes: Vec::new(),
        udp_packet_size: EDNS_UDP_SIZE,
        version: 0,
    });
    p.build_bytes_vec().ok()
}

/// A query id nobody can guess from outside (the forwarded query's own socket port is random too).
fn rand_id() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

fn rdata<'a>(soa_names: &'a (String, String), data: &'a Data) -> Option<RData<'a>> {
    Some(match data {
        Data::A(ip) => RData::A(A {
            address: u32::from(*ip),
        }),
        Data::Cname(n) => RData::CNAME(CNAME(Name::new(n).ok()?)),
        Data::Ptr(n) => RData::PTR(PTR(Name::new(n).ok()?)),
        Data::Srv {
            port,
            weight,
            target,
        } => RData::SRV(SRV {
            priority: 0,
            weight: *weight,
            port: *port,
            target: Name::new(target).ok()?,
        }),
        Data::Txt(t) => RData::TXT(TXT::new().with_string(t).ok()?),
        Data::Soa => RData::SOA(SOA {
            mname: Name::new(&soa_names.0).ok()?,
            rname: Name::new(&soa_names.1).ok()?,
            serial: 1,
            refresh: 7200,
            retry: 1800,
            expire: 86400,
            minimum: TTL,
        }),
    })
}

fn resource<'a>(soa: &'a (String, String), r: &'a Record) -> Option<ResourceRecord<'a>> {
    Some(ResourceRecord::new(
        Name::new(&r.name).ok()?,
        CLASS::IN,
        TTL,
        rdata(soa, &r.data)?,
    ))
}

/// The reply packet for `answer`; `truncated`: header and question only, with TC set.
fn build(zone: &str, q: &Packet<'_>, answer: &Answer, truncated: bool) -> Option<Vec<u8>> {
    let soa_names = (format!("ns.dns.{zone}"), format!("hostmaster.{zone}"));
    let soa_record = Record {
        name: zone.to_string(),
        data: Data::Soa,
    };
    let mut reply = Packet::new_reply(q.id());
    reply.questions = q.questions.clone();
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    if q.opt().is_some() {
        *reply.opt_mut() = Some(OPT {
            opt_codes: Vec::new(),
            udp_packet_size: EDNS_UDP_SIZE,
            version: 0,
        });
    }
    if truncated {
        reply.set_flags(PacketFlag::TRUNCATION);
        return reply.build_bytes_vec_compressed().ok();
    }
    match answer {
        Answer::Records {
            answers,
            additional,
        } => {
            for r in answers {
                reply.answers.push(resource(&soa_names, r)?);
            }
            for r in additional {
                reply.additional_records.push(resource(&soa_names, r)?);
            }
        }
        Answer::NoData | Answer::NxDomain => {
            if *answer == Answer::NxDomain {
                *reply.rcode_mut() = RCODE::NameError;
            }
            reply.name_servers.push(resource(&soa_names, &soa_record)?);
        }
        Answer::Forward => return None,
    }
    reply.build_bytes_vec_compressed().ok()
}

#[cfg(test)]
mod tests;
