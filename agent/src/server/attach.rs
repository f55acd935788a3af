//! `GET /attach/{ns}/{pod}/{container}?stdout=…&stderr=…&stdin=…&tty=…` over WebSocket
//! (`v5.channel.k8s.io` / `v4.channel.k8s.io`, the channels of [`super::exec`]).
//!
//! What the container's main process writes reaches the agent through its stdio FIFOs and lands in the
//! CRI log file; attach follows that file from its current end (as the CRI's attach does through the log
//! pipe) and sends each record on channel 1 (stdout) or 2 (stderr), re-opening the file when it is
//! rotated. skiff starts containers without a stdin pipe, so stdin sent by the client is discarded and
//! a warning goes to stderr once. When the container's task ends the stream ends with a `Success`
//! status on channel 3; a client that goes away ends the follow.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::exec::{V4, V5};
use super::locate;
use super::logs::parse_record;
use super::{ApiContext, query_pairs, text_error};

const POLL: Duration = Duration::from_millis(100);
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
pub const NO_STDIN: &str = "skiff: this container has no stdin pipe (skiff runs containers without one); input is discarded\n";

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
    let (loc, container_id) = match locate::locate_running(&ctx, &ns, &pod, &container).await {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    let log = loc.log_dir.join(format!("{}.log", loc.attempt));
    ws.protocols([V5, V4])
        .on_upgrade(move |socket| session(ctx, container_id, log, opts, socket))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Follows a CRI log file from its end, across rotations.
struct Follower {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    pending: Vec<u8>,
}

impl Follower {
    async fn open_at_end(path: PathBuf) -> Self {
        let mut file = tokio::fs::File::open(&path).await.ok();
        if let Some(f) = file.as_mut() {
            let _ = f.seek(std::io::SeekFrom::End(0)).await;
        }
        Self {
            path,
            file,
            pending: Vec::new(),
        }
    }

    /// Complete records written since the last call: (stream channel, content with its newline).
    async fn poll(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Some(f) = self.file.as_mut() else {
                self.file = tokio::fs::File::open(&self.path).await.ok();
                if self.file.is_none() {
                    break;
                }
                continue;
            };
            match f.read(&mut buf).await {
                Ok(n) if n > 0 => self.pending.extend_from_slice(&buf[..n]),
                _ => {
                    // At the end: was the file rotated away (a new inode at the path)?
                    let open = f.metadata().await.ok().map(|m| m.ino());
                    let now = tokio::fs::metadata(&self.path).await.ok().map(|m| m.ino());
                    if now.is_some() && open != now {
                        // Whatever was left unterminated in the old file stays there.
                        self.pending.clear();
                        self.file = None;
                        continue;
                    }
                    break;
                }
            }
        }
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = &line[..line.len() - 1];
            let Some(rec) = parse_record(line) else {
                continue;
            };
            let channel = if line.split(|b| *b == b' ').nth(1) == Some(b"stderr") {
                STDERR
            } else {
                STDOUT
            };
            let mut text = rec.content.to_vec();
            if !rec.partial {
                text.push(b'\n');
            }
            out.push((channel, text));
        }
        out
    }
}

/// Send new records to the client on the channels it asked for; `false` once the client is gone.
async fn forward(
    follower: &mut Follower,
    opts: &AttachOptions,
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
) -> bool {
    for (ch, text) in follower.poll().await {
        // With a terminal everything is one stream.
        let ch = if opts.tty { STDOUT } else { ch };
        let wanted = (ch == STDOUT && opts.stdout) || (ch == STDERR && opts.stderr);
        if wanted && sink.send(frame(ch, &text)).await.is_err() {
            return false;
        }
    }
    true
}

async fn session(
    ctx: Arc<ApiContext>,
    container_id: String,
    log: PathBuf,
    opts: AttachOptions,
    socket: WebSocket,
) {
    let (mut sink, mut stream) = socket.split();
    let mut follower = Follower::open_at_end(log).await;
    let mut warned = false;
    let mut tick = tokio::time::interval(POLL);
    let mut checks = 0u32;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if b.first() == Some(&0) && b.len() > 1 && opts.stdin && !warned {
                        warned = true;
                        let ch = if opts.stderr && !opts.tty { STDERR } else { STDOUT };
                        if sink.send(frame(ch, NO_STDIN.as_bytes())).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                if !forward(&mut follower, &opts, &mut sink).await {
                    return;
                }
                checks += 1;
                if checks.is_multiple_of(5) && !locate::running(&ctx, &container_id).await {
                    // Drain what the copier wrote before the task ended, then finish.
                    tokio::time::sleep(POLL * 2).await;
                    if !forward(&mut follower, &opts, &mut sink).await {
                        return;
                    }
                    let status = json!({"metadata": {}, "status": "Success"});
                    let _ = sink.send(frame(ERROR, status.to_string().as_bytes())).await;
                    let _ = sink
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code: axum::extract::ws::close_code::NORMAL,
                            reason: "".into(),
                        })))
                        .await;
                    let _ = sink.close().await;
                    return;
                }
            }
        }
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

    #[tokio::test]
    async fn follows_new_records_and_rotation() {
        let dir = std::env::temp_dir().join(format!("skiff-attach-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("0.log");
        std::fs::write(&path, "2026-01-01T00:00:00Z stdout F old\n").unwrap_or_default();
        let mut f = Follower::open_at_end(path.clone()).await;
        assert!(f.poll().await.is_empty());
        use std::io::Write as _;
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = w.write_all(b"2026-01-01T00:00:01Z stdout P par\n2026-01-01T00:00:01Z stdout F tial\n2026-01-01T00:00:02Z stderr F oops\n2026-01-01T00:00:03Z stdout F half");
        drop(w);
        let got = f.poll().await;
        assert_eq!(
            got,
            vec![
                (STDOUT, b"par".to_vec()),
                (STDOUT, b"tial\n".to_vec()),
                (STDERR, b"oops\n".to_vec())
            ]
        );
        // Rotation: the file is renamed and a new one appears at the path.
        let _ = std::fs::rename(&path, dir.join("0.log.1"));
        std::fs::write(&path, "2026-01-01T00:00:04Z stdout F new\n").unwrap_or_default();
        let got = f.poll().await;
        assert_eq!(got.last(), Some(&(STDOUT, b"new\n".to_vec())));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
