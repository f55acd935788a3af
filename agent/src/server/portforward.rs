//! `/portForward/{ns}/{pod}[/{uid}]`: the kubelet's port-forward protocol, SPDY/3.1 streams either over
//! the upgraded connection (`POST`, `Upgrade: SPDY/3.1`, `X-Stream-Protocol-Version: portforward.k8s.io`)
//! or tunnelled in WebSocket binary messages (`GET`, subprotocol `SPDY/3.1+portforward.k8s.io`, what
//! kubectl ≥ 1.31 tries first). The WebSocket channel protocol (`v4.channel.k8s.io`, `?ports=…`) of older
//! clients and the Python client is served too (see `portforward_ws.rs`).
//!
//! Every forwarded connection is a pair of client-initiated streams sharing a `requestID` header: an
//! `error` stream (the client half-closes it at once; the agent writes a failure text into it, then
//! ends it) and a `data` stream carrying the bytes. When both are open the agent connects to
//! `localhost:<port>` inside the pod's pinned network namespace (a short-lived thread `setns()`s into it
//! and opens the socket there) and copies both ways. The client's FIN half-closes the pod socket; the
//! pod's EOF ends the data stream and then the error stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::spdy::{self, Decoder, FLAG_FIN, Frame, Headers};

#[path = "portforward_ws.rs"]
mod channels;
#[path = "portforward_io.rs"]
mod transport;
use super::{ApiContext, locate, text_error};
pub use transport::connect_in_netns;
use transport::{io_text, raw_session, websocket_session};

pub const PROTOCOL: &str = "portforward.k8s.io";
pub const WS_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CHUNK: usize = 32 * 1024;

/// The pod a session forwards into.
#[derive(Debug, Clone)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub netns: PathBuf,
}

pub async fn handle(
    State(ctx): State<Arc<ApiContext>>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    req: Request,
) -> Response {
    serve(ctx, ns, pod, None, req).await
}

pub async fn handle_uid(
    State(ctx): State<Arc<ApiContext>>,
    UrlPath((ns, pod, uid)): UrlPath<(String, String, String)>,
    req: Request,
) -> Response {
    serve(ctx, ns, pod, Some(uid), req).await
}

fn ws_offers(offered: &[String], protocol: &str) -> bool {
    offered.iter().any(|p| p == protocol)
}

/// The pod's UID and the network namespace its containers run in; `None` if this node does not run it.
/// A pod on the host network (its containers' specs join no network namespace) is reached through the
/// agent's own namespace, like the kubelet does.
pub async fn find(ctx: &ApiContext, ns: &str, pod: &str, uid: Option<String>) -> Option<Target> {
    if ![ns, pod].iter().all(|n| locate::valid_name(n)) {
        return None;
    }
    if uid
        .as_deref()
        .is_some_and(|u| u.is_empty() || !u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return None;
    }
    let records = ctx.runtime.list_containers(uid.as_deref()).await.ok()?;
    let newest = records
        .into_iter()
        .filter(|r| r.meta.pod_namespace == ns && r.meta.pod_name == pod)
        .max_by_key(|r| r.created_at)?;
    let uid = newest.meta.pod_uid.clone();
    let dir = ctx.run_dir.join("pods").join(&uid);
    let sb = tokio::task::spawn_blocking(move || crate::sandbox::open(&dir))
        .await
        .ok()??;
    let netns = match container_netns(ctx, &newest.id).await {
        Some(NetNs::Path(p)) => p,
        Some(NetNs::Host) => PathBuf::from("/proc/self/ns/net"),
        None => sb.net,
    };
    Some(Target {
        namespace: ns.to_string(),
        pod: pod.to_string(),
        uid,
        netns,
    })
}

enum NetNs {
    Path(PathBuf),
    Host,
}

/// The network namespace in a container's OCI spec.
async fn container_netns(ctx: &ApiContext, id: &str) -> Option<NetNs> {
    use containerd_client::services::v1::GetContainerRequest;
    use containerd_client::services::v1::containers_client::ContainersClient;
    let cd = ctx.runtime.containerd();
    let container = ContainersClient::new(cd.channel())
        .get(cd.req(GetContainerRequest { id: id.to_string() }))
        .await
        .ok()?
        .into_inner()
        .container?;
    let spec: serde_json::Value = serde_json::from_slice(&container.spec?.value).ok()?;
    let namespaces = spec.pointer("/linux/namespaces")?.as_array()?;
    match namespaces
        .iter()
        .find(|n| n.get("type").and_then(serde_json::Value::as_str) == Some("network"))
    {
        None => Some(NetNs::Host),
        Some(n) => n
            .get("path")
            .and_then(serde_json::Value::as_str)
            .filter(|p| !p.is_empty())
            .map(|p| NetNs::Path(PathBuf::from(p))),
    }
}

async fn serve(
    ctx: Arc<ApiContext>,
    ns: String,
    pod: String,
    uid: Option<String>,
    mut req: Request,
) -> Response {
    let Some(target) = find(&ctx, &ns, &pod, uid).await else {
        return text_error(
            StatusCode::NOT_FOUND,
            format!("pod \"{pod}\" in namespace \"{ns}\" not found on this node"),
        );
    };
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if upgrade == "websocket" {
        let req_protocols: Vec<String> = req
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_string())
            .collect();
        let query = req.uri().query().map(str::to_string);
        let ws = match WebSocketUpgrade::from_request(req, &()).await {
            Ok(ws) => ws,
            Err(e) => return e.into_response(),
        };
        let channels = ws_offers(&req_protocols, channels::CHANNEL_PROTOCOL)
            && !ws_offers(&req_protocols, WS_PROTOCOL);
        if channels {
            let ports = match channels::ports(query.as_deref()) {
                Ok(p) => p,
                Err(m) => return text_error(StatusCode::BAD_REQUEST, m),
            };
            return ws
                .protocols([channels::CHANNEL_PROTOCOL])
                .on_upgrade(move |socket| channels::session(target, ports, socket));
        }
        return ws
            .protocols([WS_PROTOCOL])
            .on_upgrade(move |socket| websocket_session(target, socket));
    }
    if upgrade.starts_with("spdy/3") {
        let offered = spdy::offers_protocol(req.headers(), PROTOCOL);
        if !offered {
            return text_error(
                StatusCode::FORBIDDEN,
                format!("unable to upgrade: no common protocol; this server supports [{PROTOCOL}]"),
            );
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(io) => raw_session(target, TokioIo::new(io)).await,
                Err(e) => tracing::debug!(error = %e, "port-forward: SPDY upgrade failed"),
            }
        });
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = r.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        h.insert(
            "x-stream-protocol-version",
            HeaderValue::from_static(PROTOCOL),
        );
        return r;
    }
    text_error(
        StatusCode::BAD_REQUEST,
        "port-forward needs an upgrade: WebSocket (SPDY/3.1+portforward.k8s.io) or SPDY/3.1",
    )
}

/// One client stream.
struct StreamEntry {
    request: String,
    /// Bytes for the pod (data streams); dropping it half-closes the pod socket.
    to_pod: Option<mpsc::Sender<Bytes>>,
    /// Data that arrived before the pair was complete, and whether the client already sent FIN.
    early: Vec<Bytes>,
    fin: bool,
}

#[derive(Default)]
struct Pair {
    port: Option<String>,
    error: Option<u32>,
    data: Option<u32>,
    task: Option<JoinHandle<()>>,
}

/// The request a stream belongs to: its `requestID`, or (clients before 1.6) derived from the stream ID.
fn request_id(h: &Headers, stream_id: u32, kind: &str) -> String {
    match spdy::header(h, "requestid") {
        Some(r) => r.to_string(),
        None if kind == "data" => stream_id.saturating_sub(2).to_string(),
        None => stream_id.to_string(),
    }
}

/// Serve one SPDY connection: `input` carries the peer's bytes, `out` takes frames for it.
pub async fn run(target: Target, mut input: mpsc::Receiver<Bytes>, out: mpsc::Sender<Frame>) {
    let mut dec = Decoder::new();
    let mut streams: HashMap<u32, StreamEntry> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    'conn: while let Some(chunk) = input.recv().await {
        dec.push(&chunk);
        loop {
            let frame = match dec.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(pod = %target.pod, error = %e, "port-forward: bad SPDY input");
                    let _ = out
                        .send(Frame::GoAway {
                            last_good_stream_id: 0,
                            status: 1,
                        })
                        .await;
                    break 'conn;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    let kind = spdy::header(&headers, "streamtype")
                        .unwrap_or("")
                        .to_string();
                    if streams.contains_key(&stream_id)
                        || !matches!(kind.as_str(), "error" | "data")
                    {
                        let _ = out
                            .send(Frame::RstStream {
                                stream_id,
                                status: spdy::RST_PROTOCOL_ERROR,
                            })
                            .await;
                        continue;
                    }
                    let request = request_id(&headers, stream_id, &kind);
                    let pair = pairs.entry(request.clone()).or_default();
                    if pair.port.is_none() {
                        pair.port = spdy::header(&headers, "port").map(str::to_string);
                    }
                    if kind == "error" {
                        pair.error = Some(stream_id);
                    } else {
                        pair.data = Some(stream_id);
                    }
                    streams.insert(
                        stream_id,
                        StreamEntry {
                            request: request.clone(),
                            to_pod: None,
                            early: Vec::new(),
                            fin: false,
                        },
                    );
                    let _ = out
                        .send(Frame::SynReply {
                            stream_id,
                            flags: 0,
                            headers: Vec::new(),
                        })
                        .await;
                    if let (Some(e), Some(d), None) = (pair.error, pair.data, &pair.task) {
                        let (tx, rx) = mpsc::channel::<Bytes>(16);
                        let port = pair.port.clone().unwrap_or_default();
                        pair.task = Some(tokio::spawn(forward(
                            target.clone(),
                            port,
                            e,
                            d,
                            rx,
                            out.clone(),
                        )));
                        if let Some(entry) = streams.get_mut(&d) {
                            for b in entry.early.drain(..) {
                                let _ = tx.send(b).await;
                            }
                            if !entry.fin {
                                entry.to_pod = Some(tx);
                            }
                        }
                    }
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => {
                    let Some(entry) = streams.get_mut(&stream_id) else {
                        continue;
                    };
                    if !data.is_empty() {
                        let sent = match &entry.to_pod {
                            Some(tx) => tx.send(data).await.is_ok(),
                            None => {
                                if !entry.fin {
                                    entry.early.push(data);
                                }
                                true
                            }
                        };
                        if !sent {
                            entry.to_pod = None;
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        entry.fin = true;
                        entry.to_pod = None;
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    let Some(entry) = streams.remove(&stream_id) else {
                        continue;
                    };
                    let Some(pair) = pairs.get_mut(&entry.request) else {
                        continue;
                    };
                    // A reset data stream ends the forwarding; the error stream still gets its FIN.
                    if pair.data == Some(stream_id)
                        && let Some(t) = pair.task.take()
                        && !t.is_finished()
                    {
                        t.abort();
                        if let Some(e) = pair.error {
                            let _ = out.send(fin(e)).await;
                        }
                    }
                    let gone = |id: Option<u32>| id.is_none_or(|i| !streams.contains_key(&i));
                    if gone(pair.error) && gone(pair.data) {
                        pairs.remove(&entry.request);
                    }
                }
                Frame::Ping { id } => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => break 'conn,
                Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. } => {}
            }
        }
    }
    for (_, p) in pairs {
        if let Some(t) = p.task {
            t.abort();
        }
    }
    tracing::debug!(pod = %target.pod, "port-forward session ended");
}

fn fin(stream_id: u32) -> Frame {
    Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    }
}

/// Forward one connection: connect inside the pod, copy both ways, report a failure on the error stream.
async fn forward(
    target: Target,
    port: String,
    error_stream: u32,
    data_stream: u32,
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Frame>,
) {
    let conn = match port.parse::<u16>() {
        Ok(p) if p > 0 => connect_in_netns(target.netns.clone(), p)
            .await
            .map_err(|e| {
                format!(
                    "failed to connect to localhost:{p} inside the pod's network namespace: \
                     dial tcp 127.0.0.1:{p}: connect: {}",
                    io_text(&e)
                )
            }),
        _ => Err(format!("invalid port {port:?}")),
    };
    let sock = match conn {
        Ok(s) => s,
        Err(msg) => {
            let msg = format!(
                "error forwarding port {port} to pod {}/{}, uid {}: {msg}",
                target.namespace, target.pod, target.uid
            );
            tracing::info!("{msg}");
            let _ = out
                .send(Frame::Data {
                    stream_id: error_stream,
                    flags: 0,
                    data: Bytes::from(msg),
                })
                .await;
            let _ = out.send(fin(error_stream)).await;
            let _ = out.send(fin(data_stream)).await;
            return;
        }
    };
    let (mut rd, mut wr) = sock.into_split();
    let to_pod = tokio::spawn(async move {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                return;
            }
        }
        // The client finished sending: half-close so the pod sees EOF.
        let _ = wr.shutdown().await;
        // Keep the write half (and the socket) until the other direction is done.
        std::future::pending::<()>().await;
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let f = Frame::Data {
                    stream_id: data_stream,
                    flags: 0,
                    data: Bytes::copy_from_slice(&buf[..n]),
                };
                if out.send(f).await.is_err() {
                    break;
                }
            }
        }
    }
    to_pod.abort();
    let _ = out.send(fin(data_stream)).await;
    let _ = out.send(fin(error_stream)).await;
}

#[cfg(test)]
#[path = "portforward_tests.rs"]
mod tests;
