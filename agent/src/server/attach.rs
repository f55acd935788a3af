//! `GET /attach/{ns}/{pod}/{container}?stdout=…&stderr=…&stdin=…&tty=…` over WebSocket
//! (`v5.channel.k8s.io` / `v4.channel.k8s.io`, the channels of [`super::exec`]).
//!
//! The session joins the container's live stdio ([`crate::runtime::stdio`]): what the main process writes
//! from now on goes out on channel 1 (stdout) or 2 (stderr) as it is read, everything on 1 with a tty;
//! channel 0 is written to the container's stdin (for containers with `stdin: true`; others get a
//! one-time notice that input is discarded), channel 4 resizes its terminal. With `stdinOnce` and no tty,
//! the container's stdin is closed when the first session attached to stdin ends (v5 close of stdin, or the
//! client leaving), as containerd's CRI plugin does. When the process's output ends (it exited), the
//! session ends with a `Success` status on channel 3; a client that goes away ends only its session.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::exec::{CLOSE, ERROR, RESIZE, STDERR, STDIN, STDOUT, Size, V4, V5, frame, normal_close};
use super::locate;
use super::{ApiContext, query_pairs, text_error};
use crate::runtime::logs::Stream;
use crate::runtime::stdio::{ContainerIo, Output, StdinError};

pub const NO_STDIN: &str =
    "skiff: this container was not created with stdin: true; input is discarded\n";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl AttachOptions {
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut o = AttachOptions::default();
        let flag = |v: &str| matches!(v, "" | "1" | "true" | "True");
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "stdin" | "input" => o.stdin = flag(&v),
                "stdout" | "output" => o.stdout = flag(&v),
                "stderr" | "error" => o.stderr = flag(&v),
                "tty" => o.tty = flag(&v),
                _ => {}
            }
        }
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least one of stdin, stdout, stderr".into());
        }
        Ok(o)
    }
}

pub async fn handle(
    State(ctx): State<Arc<ApiContext>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return text_error(
            StatusCode::BAD_REQUEST,
            "attach needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported",
        );
    };
    let opts = match AttachOptions::parse(query.as_deref()) {
        Ok(o) => o,
        Err(m) => return text_error(StatusCode::BAD_REQUEST, m),
    };
    let (_, container_id) = match locate::locate_running(&ctx, &ns, &pod, &container).await {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let Some(io) = ctx.runtime.container_io(&container_id) else {
        return text_error(
            StatusCode::BAD_REQUEST,
            format!("container {container} is not running (its output has ended)"),
        );
    };
    ws.protocols([V5, V4]).on_upgrade(move |socket| async move {
        let v5 = socket
            .protocol()
            .and_then(|p| p.to_str().ok())
            .is_some_and(|p| p == V5);
        session(ctx, container_id, io, opts, socket, v5).await
    })
}

/// The channel a chunk of output goes to, `None` if the client did not ask for that stream.
fn channel_for(stream: Stream, tty: bool, opts: &AttachOptions) -> Option<u8> {
    // With a terminal everything is one stream.
    let ch = match stream {
        Stream::Stderr if !tty => STDERR,
        _ => STDOUT,
    };
    let wanted = if ch == STDOUT {
        opts.stdout
    } else {
        opts.stderr
    };
    wanted.then_some(ch)
}

async fn session(
    ctx: Arc<ApiContext>,
    id: String,
    io: Arc<ContainerIo>,
    opts: AttachOptions,
    socket: WebSocket,
    v5: bool,
) {
    let (mut sink, mut stream) = socket.split();
    let tty = io.config.tty;
    // A session with stdin closes the container's stdin when its input ends: stdinOnce without a tty.
    let once = io.config.stdin_once && !tty && opts.stdin;
    let mut stdin_open = opts.stdin;
    let mut warned = false;
    let mut output = io.subscribe();
    loop {
        let next = async {
            match output.as_mut() {
                Some(rx) => rx.recv().await,
                None => Err(RecvError::Closed),
            }
        };
        tokio::select! {
            out = next => match out {
                Ok(Output::Data(s, data)) => {
                    if let Some(ch) = channel_for(s, tty, &opts)
                        && sink.send(frame(ch, &data)).await.is_err()
                    {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(container = %id, chunks = n, "attach client too slow, output skipped");
                }
                Ok(Output::End) | Err(RecvError::Closed) => {
                    let status = json!({"metadata": {}, "status": "Success"});
                    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
                    let _ = sink.send(normal_close()).await;
                    let _ = sink.close().await;
                    break;
                }
            },
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let Some((&ch, data)) = b.split_first() else { continue };
                    match ch {
                        STDIN if stdin_open && !data.is_empty() => match io.write_stdin(data).await {
                            Ok(()) => {}
                            Err(StdinError::Absent) if !warned => {
                                warned = true;
                                let ch = if opts.stderr && !tty { STDERR } else { STDOUT };
                                if sink.send(frame(ch, NO_STDIN.as_bytes())).await.is_err() {
                                    break;
                                }
                            }
                            Err(StdinError::Write(e)) => {
                                tracing::debug!(container = %id, error = %e, "attach: stdin write failed");
                                stdin_open = false;
                            }
                            Err(_) => {}
                        },
                        RESIZE if tty => {
                            if let Ok(s) = serde_json::from_slice::<Size>(data) {
                                ctx.runtime.resize_pty(&id, u32::from(s.width), u32::from(s.height)).await;
                            }
                        }
                        CLOSE if v5 && data.first() == Some(&STDIN) => {
                            stdin_open = false;
                            if once {
                                ctx.runtime.close_stdin(&id, &io).await;
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    if once {
        ctx.runtime.close_stdin(&id, &io).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o =
            AttachOptions::parse(Some("container=c&stdout=true&stderr=true")).unwrap_or_default();
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        assert!(AttachOptions::parse(Some("container=c")).is_err());
    }

    #[test]
    fn channels() {
        let both = AttachOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        assert_eq!(channel_for(Stream::Stderr, false, &both), Some(STDERR));
        assert_eq!(channel_for(Stream::Stderr, true, &both), Some(STDOUT));
        let out_only = AttachOptions {
            stdout: true,
            ..Default::default()
        };
        assert_eq!(channel_for(Stream::Stderr, false, &out_only), None);
        assert_eq!(channel_for(Stream::Stdout, false, &out_only), Some(STDOUT));
    }
}
