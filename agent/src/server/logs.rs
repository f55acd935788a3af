//! `GET /containerLogs/{ns}/{pod}/{container}`: the container's CRI log file as plain text, with the
//! kubelet's PodLogOptions (follow, previous, tailLines, sinceSeconds, sinceTime, timestamps, limitBytes).
//! Following polls the file, re-opens it when it is rotated or truncated, and ends once the container's
//! task has exited and the file is drained.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::locate::{self, LocateError, Located};
use super::{ApiContext, query_pairs, text_error};

const POLL: Duration = Duration::from_millis(200);
/// A non-follow read never loads more than this much of a file (its end).
const MAX_READ: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<u64>,
}

fn flag(v: &str) -> Result<bool, String> {
    match v {
        "" | "true" | "1" | "True" => Ok(true),
        "false" | "0" | "False" => Ok(false),
        _ => Err(format!("invalid boolean value {v:?}")),
    }
}

impl LogOptions {
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut o = LogOptions::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "follow" => o.follow = flag(&v)?,
                "previous" => o.previous = flag(&v)?,
                "timestamps" => o.timestamps = flag(&v)?,
                "tailLines" => {
                    let n: i64 = v.parse().map_err(|_| format!("invalid tailLines {v:?}"))?;
                    o.tail_lines = Some(u64::try_from(n).map_err(|_| "tailLines must be >= 0")?);
                }
                "limitBytes" => {
                    let n: i64 = v.parse().map_err(|_| format!("invalid limitBytes {v:?}"))?;
                    if n < 1 {
                        return Err("limitBytes must be greater than zero".into());
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n: i64 = v
                        .parse()
                        .map_err(|_| format!("invalid sinceSeconds {v:?}"))?;
                    if n < 1 {
                        return Err("sinceSeconds must be greater than zero".into());
                    }
                    let ago = jiff::SignedDuration::from_secs(n);
                    o.since = jiff::Timestamp::now().checked_sub(ago).ok();
                }
                "sinceTime" => {
                    o.since = Some(
                        v.parse::<jiff::Timestamp>()
                            .map_err(|_| format!("invalid sinceTime {v:?}"))?,
                    );
                }
                _ => {}
            }
        }
        Ok(o)
    }
}

/// One CRI log record: `<RFC3339Nano> <stream> <P|F> <content>`.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub ts: &'a str,
    pub partial: bool,
    pub content: &'a [u8],
}

pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next().unwrap_or(b"");
    Some(Record {
        ts,
        partial: tag == b"P",
        content,
    })
}

/// Turns CRI lines into what `kubectl logs` prints, applying since, timestamps and the byte limit.
pub struct Renderer {
    opts: LogOptions,
    remaining: Option<u64>,
}

impl Renderer {
    pub fn new(opts: LogOptions) -> Self {
        let remaining = opts.limit_bytes;
        Self { opts, remaining }
    }

    pub fn exhausted(&self) -> bool {
        self.remaining == Some(0)
    }

    /// Render complete lines (each without its `\n`) into `out`.
    pub fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        if self.exhausted() {
            return;
        }
        let Some(rec) = parse_record(line) else {
            return;
        };
        if let Some(since) = self.opts.since
            && rec.ts.parse::<jiff::Timestamp>().is_ok_and(|t| t < since)
        {
            return;
        }
        let start = out.len();
        if self.opts.timestamps {
            out.extend_from_slice(rec.ts.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(rec.content);
        if !rec.partial {
            out.push(b'\n');
        }
        if let Some(rem) = self.remaining.as_mut() {
            let written = (out.len() - start) as u64;
            if written > *rem {
                out.truncate(start + *rem as usize);
                *rem = 0;
            } else {
                *rem -= written;
            }
        }
    }
}

/// The byte offset where the last `n` lines of `buf` start.
pub fn tail_start(buf: &[u8], n: u64) -> usize {
    if n == 0 {
        return buf.len();
    }
    let end = if buf.ends_with(b"\n") {
        buf.len() - 1
    } else {
        buf.len()
    };
    let mut seen = 0;
    for i in (0..end).rev() {
        if buf[i] == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

/// Feed `buf`'s complete lines to the renderer; returns the unterminated rest.
fn render_lines(r: &mut Renderer, buf: &[u8], out: &mut Vec<u8>) -> usize {
    let mut start = 0;
    while let Some(i) = buf[start..].iter().position(|b| *b == b'\n') {
        r.line(&buf[start..start + i], out);
        start += i + 1;
    }
    start
}

fn status_of(e: &LocateError) -> StatusCode {
    match e {
        LocateError::NotFound(_) => StatusCode::NOT_FOUND,
        LocateError::Runtime(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Which file to read, and the container id to watch while following (none for `previous`).
fn choose_file(
    loc: &Located,
    opts: &LogOptions,
    pod: &str,
    container: &str,
) -> Result<(PathBuf, Option<String>), Box<Response>> {
    let mut have = locate::attempts(&loc.log_dir);
    have.sort_unstable();
    if opts.previous {
        let prev = have.iter().rev().find(|a| **a < loc.attempt).copied();
        return match prev {
            Some(a) => Ok((loc.log_dir.join(format!("{a}.log")), None)),
            None => Err(Box::new(text_error(
                StatusCode::BAD_REQUEST,
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found"),
            ))),
        };
    }
    let current = loc.log_dir.join(format!("{}.log", loc.attempt));
    if current.exists() {
        return Ok((current, loc.container_id.clone()));
    }
    match have.last() {
        Some(a) if loc.container_id.is_none() => Ok((loc.log_dir.join(format!("{a}.log")), None)),
        _ => Err(Box::new(text_error(
            StatusCode::BAD_REQUEST,
            format!("container \"{container}\" in pod \"{pod}\" is waiting to start"),
        ))),
    }
}

pub async fn handle(
    State(ctx): State<Arc<ApiContext>>,
    UrlPath((ns, pod, container)): UrlPath<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let opts = match LogOptions::parse(query.as_deref()) {
        Ok(o) => o,
        Err(m) => return text_error(StatusCode::BAD_REQUEST, m),
    };
    let loc = match locate::locate(&ctx, &ns, &pod, &container).await {
        Ok(l) => l,
        Err(e) => return text_error(status_of(&e), e.to_string()),
    };
    let (path, watch_id) = match choose_file(&loc, &opts, &pod, &container) {
        Ok(x) => x,
        // A running container that has not written anything yet (the copier creates the file with the first
        // line): an empty log, as the kubelet answers, rather than "waiting to start".
        Err(r) if !opts.previous => match &loc.container_id {
            Some(id) if locate::running(&ctx, id).await => {
                let current = loc.log_dir.join(format!("{}.log", loc.attempt));
                if let Err(e) = tokio::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(&current)
                    .await
                {
                    tracing::debug!(log = %current.display(), error = %e, "cannot create the log file");
                }
                (current, Some(id.clone()))
            }
            _ => return *r,
        },
        Err(r) => return *r,
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            return text_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to open log file {}: {e}", path.display()),
            );
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let follow = if opts.follow { watch_id } else { None };
    tokio::spawn(async move {
        let mut s = Streamer {
            renderer: Renderer::new(opts.clone()),
            tx,
        };
        if let Err(e) = s.run(file, &path, opts, follow, &ctx).await {
            tracing::debug!(log = %path.display(), error = %e, "log stream ended");
        }
    });
    let mut r = Response::new(Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

struct Streamer {
    renderer: Renderer,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Streamer {
    async fn send(&self, out: Vec<u8>) -> std::io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(Bytes::from(out)))
            .await
            .map_err(|_| std::io::Error::other("client went away"))
    }

    async fn run(
        &mut self,
        mut file: tokio::fs::File,
        path: &Path,
        opts: LogOptions,
        follow: Option<String>,
        ctx: &ApiContext,
    ) -> std::io::Result<()> {
        let len = file.metadata().await?.len();
        if len > MAX_READ {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(len - MAX_READ)).await?;
        }
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).await?;
        let start = opts.tail_lines.map_or(0, |n| tail_start(&buf, n));
        let mut out = Vec::new();
        let used = start + render_lines(&mut self.renderer, &buf[start..], &mut out);
        let mut pending = buf.split_off(used);
        self.send(out).await?;
        let Some(id) = follow else {
            // A final unterminated line (a writer mid-record) is shown as is.
            let mut out = Vec::new();
            if !pending.is_empty() {
                self.renderer.line(&pending, &mut out);
            }
            return self.send(out).await;
        };
        let mut chunk = vec![0u8; 64 * 1024];
        let mut ended = false;
        loop {
            if self.renderer.exhausted() || self.tx.is_closed() {
                return Ok(());
            }
            let n = file.read(&mut chunk).await?;
            if n > 0 {
                pending.extend_from_slice(&chunk[..n]);
                let mut out = Vec::new();
                let used = render_lines(&mut self.renderer, &pending, &mut out);
                pending.drain(..used);
                self.send(out).await?;
                continue;
            }
            if ended {
                return Ok(());
            }
            // At the end of the open file: rotated away, truncated, or just quiet?
            let open = file.metadata().await?;
            match tokio::fs::metadata(path).await {
                Ok(m) if m.ino() != open.ino() => {
                    file = tokio::fs::File::open(path).await?;
                    continue;
                }
                Ok(m) if m.len() < file_pos(&mut file).await? => {
                    file = tokio::fs::File::open(path).await?;
                    continue;
                }
                _ => {}
            }
            if !locate::running(ctx, &id).await {
                // One more read drains what the copier wrote before the task ended.
                ended = true;
                tokio::time::sleep(POLL).await;
                continue;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn file_pos(file: &mut tokio::fs::File) -> std::io::Result<u64> {
    use tokio::io::AsyncSeekExt;
    file.stream_position().await
}

#[cfg(test)]
mod tests {
    use super::*;

    const L1: &str = "2026-11-27T06:00:00.1Z stdout F one";
    const L2: &str = "2026-11-27T06:00:01.1Z stderr P tw";
    const L3: &str = "2026-11-27T06:00:01.2Z stderr F o";

    fn render(opts: LogOptions, text: &str) -> String {
        let mut r = Renderer::new(opts);
        let mut out = Vec::new();
        let used = render_lines(&mut r, text.as_bytes(), &mut out);
        assert_eq!(used, text.len());
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn strips_prefix_and_joins_partials() {
        let text = format!("{L1}\n{L2}\n{L3}\n");
        assert_eq!(render(LogOptions::default(), &text), "one\ntwo\n");
        let ts = LogOptions {
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            render(ts, &format!("{L1}\n")),
            "2026-11-27T06:00:00.1Z one\n"
        );
    }

    #[test]
    fn since_and_limit() {
        let text = format!("{L1}\n{L2}\n{L3}\n");
        let since = LogOptions {
            since: "2026-11-27T06:00:01Z".parse().ok(),
            ..Default::default()
        };
        assert_eq!(render(since, &text), "two\n");
        let limit = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(render(limit, &text), "one\nt");
    }

    #[test]
    fn tail() {
        let b = b"a\nb\nc\n";
        assert_eq!(tail_start(b, 1), 4);
        assert_eq!(tail_start(b, 2), 2);
        assert_eq!(tail_start(b, 5), 0);
        assert_eq!(tail_start(b, 0), 6);
        assert_eq!(tail_start(b"a\nb", 1), 2);
    }

    #[test]
    fn options() {
        let o = LogOptions::parse(Some(
            "follow=true&tailLines=3&limitBytes=10&timestamps=true",
        ))
        .unwrap_or_default();
        assert!(o.follow && o.timestamps);
        assert_eq!(o.tail_lines, Some(3));
        assert_eq!(o.limit_bytes, Some(10));
        assert!(LogOptions::parse(Some("tailLines=x")).is_err());
        assert!(LogOptions::parse(Some("limitBytes=0")).is_err());
        assert!(LogOptions::parse(Some("sinceSeconds=10")).is_ok_and(|o| o.since.is_some()));
        assert!(parse_record(b"garbage").is_none());
    }
}
