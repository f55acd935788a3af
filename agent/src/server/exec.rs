//! `GET /exec/{ns}/{pod}/{container}?command=…&stdin=…&stdout=…&stderr=…&tty=…` over WebSocket with the
//! `v5.channel.k8s.io` (or `v4.channel.k8s.io`) subprotocol. Every binary frame starts with a channel
//! byte: 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4 terminal resize
//! (`{"Width":…,"Height":…}`), 255 (v5 only) close a stream (`[255, 0]` ends stdin).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequest, Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::exec_process::{self, ExecError, ExecHandle, ExecRequest};
use super::locate;
use super::{ApiContext, query_pairs, text_error};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

// The channels, shared with attach.
pub(super) const STDIN: u8 = 0;
pub(super) const STDOUT: u8 = 1;
pub(super) const STDERR: u8 = 2;
pub(super) const ERROR: u8 = 3;
pub(super) const RESIZE: u8 = 4;
pub(super) const CLOSE: u8 = 255;

/// A channel-4 terminal size.
#[derive(serde::Deserialize)]
pub(super) struct Size {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut o = ExecOptions::default();
        let flag = |v: &str| matches!(v, "" | "1" | "true" | "True");
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "command" => o.command.push(v),
                "stdin" | "input" => o.stdin = flag(&v),
                "stdout" | "output" => o.stdout = flag(&v),
                "stderr" | "error" => o.stderr = flag(&v),
                "tty" => o.tty = flag(&v),
                _ => {}
            }
        }
        if o.command.is_empty() {
            return Err("you must specify at least 1 command".into());
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least one of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

/// The channel-3 `Status` for an exit code.
pub fn exit_status(command: &[String], code: u32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

pub(super) fn internal_status(message: &str) -> serde_json::Value {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500})
}

/// How an exec session ends: the channel-3 status once the process exited (after the output pumps drained
/// what it wrote), or `None` when the client went away, in which case the process goes too (as with the
/// CRI's exec).
pub(super) async fn settle(
    handle: &ExecHandle,
    command: &[String],
    outcome: Option<Result<u32, ExecError>>,
    pumps: Vec<tokio::task::JoinHandle<()>>,
) -> Option<serde_json::Value> {
    match outcome {
        Some(Ok(code)) => {
            for p in pumps {
                let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
            }
            Some(exit_status(command, code))
        }
        Some(Err(e)) => Some(internal_status(&e.to_string())),
        None => {
            handle.kill().await;
            let _ = handle.wait().await;
            handle.delete().await;
            None
        }
    }
}

pub async fn handle(
    State(ctx): State<Arc<ApiContext>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    http: axum::extract::Request,
) -> Response {
    let (ws, spdy) = if super::exec_spdy::is_spdy(&http) {
        (None, Some(http))
    } else {
        match WebSocketUpgrade::from_request(http, &()).await {
            Ok(ws) => (Some(ws), None),
            Err(_) => {
                return text_error(
                    StatusCode::BAD_REQUEST,
                    "exec needs an upgrade: WebSocket (v5.channel.k8s.io or v4.channel.k8s.io) or SPDY/3.1",
                );
            }
        }
    };
    let opts = match ExecOptions::parse(query.as_deref()) {
        Ok(o) => o,
        Err(m) => return text_error(StatusCode::BAD_REQUEST, m),
    };
    let (loc, container_id) = match locate::locate_running(&ctx, &ns, &pod, &container).await {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let req = ExecRequest {
        container_id,
        pod_uid: loc.uid,
        command: opts.command,
        tty: opts.tty,
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let (Some(ws), None) = (ws, spdy.as_ref()) else {
        return match spdy {
            Some(http) => super::exec_spdy::upgrade(ctx, req, http),
            None => text_error(StatusCode::INTERNAL_SERVER_ERROR, "no upgrade"),
        };
    };
    ws.protocols([V5, V4]).on_upgrade(move |socket| async move {
        let v5 = socket
            .protocol()
            .and_then(|p| p.to_str().ok())
            .is_some_and(|p| p == V5);
        session(ctx, req, socket, v5).await
    })
}

pub(super) fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    }))
}

pub(super) fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

async fn session(ctx: Arc<ApiContext>, req: ExecRequest, socket: WebSocket, v5: bool) {
    let (mut sink, mut stream) = socket.split();
    let (handle, pipes) = match exec_process::start(&ctx.runtime, &ctx.run_dir, &req).await {
        Ok(x) => x,
        Err(e) => {
            tracing::info!(container = %req.container_id, error = %e, "exec failed to start");
            let status = internal_status(&e.to_string());
            let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        // client-go ends its streams cleanly only on a normal (1000) close.
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
    });
    let mut pumps = Vec::new();
    for (rx, ch) in [(pipes.stdout, STDOUT), (pipes.stderr, STDERR)] {
        let Some(mut rx) = rx else { continue };
        let tx = out_tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match rx.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(frame(ch, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    let (in_tx, stdin_task) = match pipes.stdin {
        Some(mut w) => {
            let (tx, mut rx) = mpsc::channel::<Bytes>(32);
            let h = handle.clone();
            let task = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if w.write_all(&b).await.is_err() {
                        break;
                    }
                }
                drop(w);
                h.close_stdin().await;
            });
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    tracing::debug!(exec = %handle.exec_id, container = %req.container_id, v5, "exec started");
    let outcome = input_loop(&handle, &mut stream, in_tx, v5).await;
    tracing::debug!(exec = %handle.exec_id, outcome = ?outcome.as_ref().map(|r| r.as_ref().map_err(|e| e.to_string())), "exec ended");
    let Some(status) = settle(&handle, &req.command, outcome, pumps).await else {
        drop(out_tx);
        writer.abort();
        return;
    };
    handle.delete().await;
    if let Some(t) = stdin_task {
        t.abort();
    }
    let _ = out_tx
        .send(frame(ERROR, status.to_string().as_bytes()))
        .await;
    drop(out_tx);
    let _ = writer.await;
}

/// Feed stdin and resizes until the process ends (`Some(exit)`) or the client disconnects (`None`).
async fn input_loop(
    handle: &ExecHandle,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    mut stdin: Option<mpsc::Sender<Bytes>>,
    v5: bool,
) -> Option<Result<u32, exec_process::ExecError>> {
    let wait = handle.wait();
    tokio::pin!(wait);
    loop {
        tokio::select! {
            r = &mut wait => return Some(r),
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let Some((&ch, data)) = b.split_first() else { continue };
                    match ch {
                        STDIN => {
                            if let Some(tx) = &stdin
                                && !data.is_empty()
                                && tx.send(Bytes::copy_from_slice(data)).await.is_err()
                            {
                                stdin = None;
                            }
                        }
                        RESIZE => {
                            if let Ok(s) = serde_json::from_slice::<Size>(data) {
                                handle.resize(u32::from(s.width), u32::from(s.height)).await;
                            }
                        }
                        CLOSE if v5 && data.first() == Some(&STDIN) => stdin = None,
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    tracing::debug!(exec = %handle.exec_id, end = ?msg, "exec client stream ended");
                    // Half-closed clients still want the result: give the process a moment to finish.
                    return tokio::time::timeout(Duration::from_millis(100), &mut wait).await.ok();
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = ExecOptions::parse(Some(
            "command=sh&command=-c&command=echo+hi%3B+exit+3&container=c&stdin=true&stdout=true&tty=true",
        ))
        .unwrap_or_default();
        assert_eq!(o.command, vec!["sh", "-c", "echo hi; exit 3"]);
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        assert!(ExecOptions::parse(Some("stdout=true")).is_err());
        assert!(ExecOptions::parse(Some("command=ls")).is_err());
    }

    #[test]
    fn statuses() {
        assert_eq!(
            exit_status(&[], 0),
            json!({"metadata": {}, "status": "Success"})
        );
        let s = exit_status(&["sh".into()], 3);
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(s["reason"], "NonZeroExitCode");
    }
}
