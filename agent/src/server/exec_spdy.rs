//! exec over SPDY/3.1: kubectl's fallback when the WebSocket upgrade is refused, and what clients
//! with `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` use. `POST` with `Upgrade: SPDY/3.1` and
//! `X-Stream-Protocol-Version` listing `v4.channel.k8s.io` (the agent answers with v4; v5 adds nothing
//! over SPDY). The client opens one stream per channel, named by the `streamType` header: `error`,
//! `stdin`, `stdout`, `stderr` (not with a tty) and `resize` (with a tty; a sequence of
//! `{"Width":…,"Height":…}` objects). Once all expected streams are open the process starts; its output
//! goes to the stdout/stderr streams, stdin's FIN closes the process's stdin, and at the end the `Status`
//! is written to the error stream and every stream is finished.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exec::{internal_status, settle};
use super::exec_process::{self, ExecRequest};
use super::spdy::{self, Decoder, Encoder, FLAG_FIN, Frame};
use super::{ApiContext, text_error};

pub const PROTOCOL: &str = "v4.channel.k8s.io";
/// How long the client has to open all its streams.
const STREAMS_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the request asks for a SPDY upgrade.
pub fn is_spdy(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("spdy/3"))
}

/// Answer 101 and run the exec session on the upgraded connection.
pub fn upgrade(ctx: Arc<ApiContext>, req: ExecRequest, mut http: Request) -> Response {
    let offered = spdy::offers_protocol(http.headers(), PROTOCOL);
    if !offered {
        return text_error(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: no common protocol; this server supports [{PROTOCOL}]"),
        );
    }
    tracing::debug!(container = %req.container_id, "exec over SPDY/3.1");
    let on_upgrade = hyper::upgrade::on(&mut http);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => session(ctx, req, TokioIo::new(io)).await,
            Err(e) => tracing::debug!(error = %e, "exec: SPDY upgrade failed"),
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
    r
}

fn data(stream_id: u32, flags: u8, b: &[u8]) -> Frame {
    Frame::Data {
        stream_id,
        flags,
        data: Bytes::copy_from_slice(b),
    }
}

async fn session<T>(ctx: Arc<ApiContext>, req: ExecRequest, io: T)
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut enc = Encoder::new();
        while let Some(f) = out_rx.recv().await {
            if wr.write_all(&enc.encode(&f)).await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut dec = Decoder::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut streams: HashMap<String, u32> = HashMap::new();
    let mut expected = vec!["error"];
    if req.stdin {
        expected.push("stdin");
    }
    if req.stdout {
        expected.push("stdout");
    }
    if req.stderr && !req.tty {
        expected.push("stderr");
    }
    if req.tty {
        expected.push("resize");
    }
    // Phase 1: collect the streams.
    let deadline = tokio::time::Instant::now() + STREAMS_TIMEOUT;
    let mut pending: Vec<Frame> = Vec::new();
    while !expected.iter().all(|k| streams.contains_key(*k)) {
        let n = match tokio::time::timeout_at(deadline, rd.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => {
                drop(out);
                let _ = writer.await;
                return;
            }
        };
        dec.push(&buf[..n]);
        while let Ok(Some(f)) = dec.next_frame() {
            match f {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    let kind = spdy::header(&headers, "streamtype")
                        .unwrap_or("")
                        .to_string();
                    let _ = out
                        .send(Frame::SynReply {
                            stream_id,
                            flags: 0,
                            headers: Vec::new(),
                        })
                        .await;
                    streams.insert(kind, stream_id);
                }
                Frame::Ping { id } => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                other => pending.push(other),
            }
        }
    }
    let id = |k: &str| streams.get(k).copied().unwrap_or(0);
    let (error_id, stdin_id, resize_id) = (id("error"), id("stdin"), id("resize"));
    let (handle, pipes) = match exec_process::start(&ctx.runtime, &ctx.run_dir, &req).await {
        Ok(x) => x,
        Err(e) => {
            let status = internal_status(&e.to_string()).to_string();
            let _ = out.send(data(error_id, FLAG_FIN, status.as_bytes())).await;
            for (_, s) in streams.iter().filter(|(k, _)| *k != "error") {
                let _ = out.send(data(*s, FLAG_FIN, b"")).await;
            }
            drop(out);
            let _ = writer.await;
            return;
        }
    };
    // Output pumps.
    let mut pumps = Vec::new();
    for (rx, kind) in [(pipes.stdout, "stdout"), (pipes.stderr, "stderr")] {
        let (Some(mut rx), Some(sid)) = (rx, streams.get(kind).copied()) else {
            continue;
        };
        let out = out.clone();
        pumps.push(tokio::spawn(async move {
            let mut b = vec![0u8; 32 * 1024];
            while let Ok(n) = rx.read(&mut b).await {
                if n == 0 || out.send(data(sid, 0, &b[..n])).await.is_err() {
                    break;
                }
            }
        }));
    }
    // Input: stdin bytes, resizes, pings, until the process ends or the client goes away.
    let mut stdin = pipes.stdin;
    let mut resize_buf: Vec<u8> = Vec::new();
    let wait = handle.wait();
    tokio::pin!(wait);
    let mut frames = pending;
    let outcome = 'outer: loop {
        for f in frames.drain(..) {
            match f {
                Frame::Data {
                    stream_id,
                    flags,
                    data: d,
                } if stream_id == stdin_id && stdin_id != 0 => {
                    if let Some(w) = stdin.as_mut()
                        && !d.is_empty()
                        && w.write_all(&d).await.is_err()
                    {
                        stdin = None;
                    }
                    if flags & FLAG_FIN != 0 && stdin.take().is_some() {
                        handle.close_stdin().await;
                    }
                }
                Frame::Data {
                    stream_id, data: d, ..
                } if stream_id == resize_id && resize_id != 0 => {
                    resize_buf.extend_from_slice(&d);
                    let mut it = serde_json::Deserializer::from_slice(&resize_buf)
                        .into_iter::<serde_json::Value>();
                    let mut used = 0;
                    while let Some(Ok(v)) = it.next() {
                        used = it.byte_offset();
                        let dim = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
                        if let (Some(w), Some(h)) = (dim("Width"), dim("Height")) {
                            handle.resize(w as u32, h as u32).await;
                        }
                    }
                    resize_buf.drain(..used);
                }
                Frame::Ping { id } => {
                    let _ = out.send(Frame::Ping { id }).await;
                }
                Frame::GoAway { .. } => break 'outer None,
                _ => {}
            }
        }
        tokio::select! {
            r = &mut wait => break Some(r),
            n = rd.read(&mut buf) => match n {
                Ok(n) if n > 0 => {
                    dec.push(&buf[..n]);
                    loop {
                        match dec.next_frame() {
                            Ok(Some(f)) => frames.push(f),
                            Ok(None) => break,
                            Err(_) => break 'outer None,
                        }
                    }
                }
                _ => break tokio::time::timeout(Duration::from_millis(100), &mut wait).await.ok(),
            },
        }
    };
    let Some(status) = settle(&handle, &req.command, outcome, pumps).await else {
        drop(out);
        writer.abort();
        return;
    };
    handle.delete().await;
    for (k, s) in &streams {
        if k != "error" {
            let _ = out.send(data(*s, FLAG_FIN, b"")).await;
        }
    }
    let text = status.to_string();
    let _ = out.send(data(error_id, FLAG_FIN, text.as_bytes())).await;
    drop(out);
    let _ = writer.await;
}
