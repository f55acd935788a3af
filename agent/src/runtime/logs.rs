//! Container output: task stdio FIFOs copied into CRI-format log files
//! (`<RFC3339Nano> stdout|stderr F|P <text>`), the layout log shippers and `kubectl logs` expect.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

pub use super::log_files::{
    LogPolicy, RotatingFile, SharedLog, link, link_path, parse_size, policy, rotated_files,
    set_policy, shared_log, unlink,
};
use super::stdio::{ContainerIo, IoRegistry};

/// Lines longer than this are split into `P` (partial) records, like containerd's CRI plugin.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Append one CRI log record to `out`.
pub fn format_record(out: &mut Vec<u8>, ts: &str, stream: Stream, partial: bool, text: &[u8]) {
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Turns a byte stream into CRI records: complete lines become `F`, over-long ones are cut into `P` chunks.
pub struct LineSplitter {
    stream: Stream,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: Stream) -> Self {
        Self {
            stream,
            pending: Vec::new(),
        }
    }

    /// Feed bytes; returns the records that are complete now.
    pub fn feed(&mut self, ts: &str, mut data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !data.is_empty() {
            match data.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.pending.extend_from_slice(&data[..i]);
                    data = &data[i + 1..];
                    self.flush_long(ts, &mut out);
                    let line = std::mem::take(&mut self.pending);
                    format_record(&mut out, ts, self.stream, false, &line);
                }
                None => {
                    self.pending.extend_from_slice(data);
                    data = &[];
                    self.flush_long(ts, &mut out);
                }
            }
        }
        out
    }

    /// End of stream: a trailing unterminated line is written as a full record.
    pub fn finish(&mut self, ts: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            format_record(&mut out, ts, self.stream, false, &line);
        }
        out
    }

    fn flush_long(&mut self, ts: &str, out: &mut Vec<u8>) {
        while self.pending.len() > MAX_LINE {
            let rest = self.pending.split_off(MAX_LINE);
            let chunk = std::mem::replace(&mut self.pending, rest);
            format_record(out, ts, self.stream, true, &chunk);
        }
    }
}

/// RFC3339 with nanoseconds in UTC, trailing zeros trimmed (Go's RFC3339Nano).
pub fn now_rfc3339_nano() -> String {
    jiff::Timestamp::now().to_string()
}

/// `<pod-log-dir>/<ns>_<pod>_<uid>/<container>/<restartCount>.log`
pub fn log_path(
    pod_log_dir: &Path,
    ns: &str,
    pod: &str,
    uid: &str,
    container: &str,
    restart: u32,
) -> PathBuf {
    pod_log_dir
        .join(format!("{ns}_{pod}_{uid}"))
        .join(container)
        .join(format!("{restart}.log"))
}

/// Remove the log directories of pod `uid` (`<pod-log-dir>/*_<uid>`), as the kubelet does once a pod is
/// gone. Found by UID so it works for pods known only from container labels. Returns the errors seen.
pub fn remove_pod_logs(pod_log_dir: &Path, uid: &str) -> Vec<String> {
    let suffix = format!("_{uid}");
    let entries = match std::fs::read_dir(pod_log_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => return vec![format!("read {}: {e}", pod_log_dir.display())],
    };
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().ends_with(&suffix) {
            continue;
        }
        let path = entry.path();
        if let Err(e) = std::fs::remove_dir_all(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            errors.push(format!("remove {}: {e}", path.display()));
        }
    }
    errors
}

/// The FIFOs of one container: `<run-dir>/io/<pod-uid>/<container-id>-{stdout,stderr}`.
pub fn fifo_paths(run_dir: &Path, pod_uid: &str, container_id: &str) -> (PathBuf, PathBuf) {
    let dir = run_dir.join("io").join(pod_uid);
    (
        dir.join(format!("{container_id}-stdout")),
        dir.join(format!("{container_id}-stderr")),
    )
}

/// Create the output FIFOs (replacing stale ones) and the log directory; blocking, run it in
/// `spawn_blocking`.
pub fn create_fifos(fifos: &[PathBuf], log: &Path) -> std::io::Result<()> {
    for dir in fifos.iter().filter_map(|p| p.parent()).chain(log.parent()) {
        std::fs::create_dir_all(dir)?;
    }
    for p in fifos {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(std::io::Error::from)?;
    }
    Ok(())
}

/// Hold both FIFOs open read-write while the shim opens its ends, so neither side sees a missing peer.
pub struct FifoKeepalive {
    _fds: Vec<pipe::Receiver>,
}

pub fn keepalive(paths: &[PathBuf]) -> std::io::Result<FifoKeepalive> {
    let mut fds = Vec::new();
    for p in paths {
        fds.push(pipe::OpenOptions::new().read_write(true).open_receiver(p)?);
    }
    Ok(FifoKeepalive { _fds: fds })
}

/// Where a copier hands what it reads besides the log file: the container's live stdio (attach).
pub struct Live {
    pub registry: IoRegistry,
    pub id: String,
    pub io: Arc<ContainerIo>,
}

/// Copy one FIFO into the CRI log file (and to attached clients) until every writer (the shim) has closed
/// it. The reader opens read-only, so it sees end of file once the task's stdio is gone.
pub fn spawn_copier(
    fifo: PathBuf,
    stream: Stream,
    log: SharedLog,
    live: Live,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut rx = pipe::OpenOptions::new().open_receiver(&fifo)?;
    Ok(tokio::spawn(async move {
        let mut splitter = LineSplitter::new(stream);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    live.io.publish(stream, &buf[..n]);
                    let out = splitter.feed(&now_rfc3339_nano(), &buf[..n]);
                    if !out.is_empty() {
                        let mut w = log.lock().await;
                        if let Err(e) = w.write(&out).await {
                            tracing::warn!(log = %w.path().display(), error = %e, "cannot write container log");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(fifo = %fifo.display(), error = %e, "cannot read container output");
                    break;
                }
            }
        }
        let out = splitter.finish(&now_rfc3339_nano());
        let mut w = log.lock().await;
        if !out.is_empty() {
            let _ = w.write(&out).await;
        }
        let _ = w.flush().await;
        drop(w);
        let _ = tokio::fs::remove_file(&fifo).await;
        live.registry.copier_done(&live.id, &live.io);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_logs_are_removed_by_uid_only() {
        let dir = std::env::temp_dir().join(format!("skiff-logs-{}", uuid::Uuid::new_v4()));
        let mine = log_path(&dir, "default", "web", "uid-1", "app", 0);
        let other = log_path(&dir, "default", "web", "uid-10", "app", 0);
        for f in [&mine, &other] {
            if let Some(parent) = f.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(f, "x\n").unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(remove_pod_logs(&dir, "uid-1").is_empty());
        assert!(!dir.join("default_web_uid-1").exists());
        assert!(other.exists());
        assert!(remove_pod_logs(&dir.join("missing"), "uid-1").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    const TS: &str = "2026-11-27T06:00:00.123456789Z";

    fn s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap_or_default()
    }

    #[test]
    fn full_lines() {
        let mut sp = LineSplitter::new(Stream::Stdout);
        assert_eq!(
            s(sp.feed(TS, b"hello\nwor")),
            format!("{TS} stdout F hello\n")
        );
        assert_eq!(s(sp.feed(TS, b"ld\n")), format!("{TS} stdout F world\n"));
        assert_eq!(s(sp.feed(TS, b"\n")), format!("{TS} stdout F \n"));
        assert_eq!(s(sp.feed(TS, b"tail")), "");
        assert_eq!(s(sp.finish(TS)), format!("{TS} stdout F tail\n"));
        assert_eq!(s(sp.finish(TS)), "");
    }

    #[test]
    fn long_lines_are_split() {
        let mut sp = LineSplitter::new(Stream::Stderr);
        let mut data = vec![b'a'; MAX_LINE + 10];
        data.push(b'\n');
        let out = s(sp.feed(TS, &data));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with(&format!("{TS} stderr P aaa")));
        assert_eq!(lines[0].len(), TS.len() + " stderr P ".len() + MAX_LINE);
        assert_eq!(lines[1], format!("{TS} stderr F {}", "a".repeat(10)));
    }

    #[test]
    fn timestamp_shape() {
        let ts = now_rfc3339_nano();
        assert!(ts.ends_with('Z'));
        assert!(ts.parse::<jiff::Timestamp>().is_ok());
    }

    #[test]
    fn paths() {
        let p = log_path(
            Path::new("/var/log/pods"),
            "default",
            "nginx",
            "u1",
            "web",
            2,
        );
        assert_eq!(p, PathBuf::from("/var/log/pods/default_nginx_u1/web/2.log"));
        let (o, e) = fifo_paths(Path::new("/run/skiff"), "u1", "u1-web-2");
        assert_eq!(o, PathBuf::from("/run/skiff/io/u1/u1-web-2-stdout"));
        assert_eq!(e, PathBuf::from("/run/skiff/io/u1/u1-web-2-stderr"));
    }
}
