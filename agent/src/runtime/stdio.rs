//! The live stdio of running containers, for `attach`: what the main process writes, as it is read from
//! the task's FIFOs (before it becomes log records, so a shell prompt without a newline arrives at once),
//! and the write end of its stdin FIFO for containers with `stdin: true`.
//!
//! Decisions:
//! - Output is a broadcast, made when the first attach session subscribes (most containers are never
//!   attached to; its ring costs ≈ 16 KiB): the log copiers publish only while someone listens, and a
//!   session that falls too far behind loses the oldest chunks (the log file keeps all). When the last
//!   copier sees the task's stdio close, the output ends with [`Output::End`].
//! - stdin follows containerd's CRI plugin: the agent holds the FIFO's write end for the container's whole
//!   life; with `stdinOnce` (and no tty) it is closed when the first attach session with stdin ends.
//!   The shim holds a write end of its own, so closing also asks containerd to close the process's
//!   stdin (`CloseIO`), and the FIFO file goes: a restarted agent reopens stdin only if the file is there.
//! - With a tty there is one output stream (the terminal), and stderr does not exist.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use k8s_openapi::api::core::v1::Container;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;

use super::logs::Stream;

/// Output chunks a subscriber may fall behind by before it loses the oldest.
const BACKLOG: usize = 256;

/// A container's stdio settings from its pod spec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StdioConfig {
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
}

impl StdioConfig {
    pub fn of(c: &Container) -> Self {
        Self {
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Output {
    Data(Stream, Bytes),
    /// The task's stdio is closed: nothing more will come.
    End,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StdinError {
    #[error("this container was not created with stdin: true")]
    Absent,
    #[error("the container's stdin is closed")]
    Closed,
    #[error("write to the container's stdin: {0}")]
    Write(String),
}

enum Stdin {
    Absent,
    Open { fifo: PathBuf, tx: pipe::Sender },
    Closed,
}

pub struct ContainerIo {
    pub config: StdioConfig,
    output: Mutex<OutputState>,
    stdin: tokio::sync::Mutex<Stdin>,
}

struct OutputState {
    /// Made by the first subscriber.
    tx: Option<broadcast::Sender<Output>>,
    /// Copiers still reading; the output has ended at 0.
    copiers: usize,
}

impl ContainerIo {
    /// `copiers`: how many output FIFOs feed this (1 with a tty, else 2). `stdin`: the FIFO the agent
    /// opened for writing, if the container has stdin.
    fn new(config: StdioConfig, copiers: usize, stdin: Option<(PathBuf, pipe::Sender)>) -> Self {
        let stdin = match stdin {
            Some((fifo, tx)) => Stdin::Open { fifo, tx },
            None if config.stdin => Stdin::Closed,
            None => Stdin::Absent,
        };
        Self {
            config,
            output: Mutex::new(OutputState { tx: None, copiers }),
            stdin: tokio::sync::Mutex::new(stdin),
        }
    }

    fn output(&self) -> std::sync::MutexGuard<'_, OutputState> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Output from now on; `None` once the output has ended.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Output>> {
        let mut out = self.output();
        if out.copiers == 0 {
            return None;
        }
        Some(
            out.tx
                .get_or_insert_with(|| broadcast::channel(BACKLOG).0)
                .subscribe(),
        )
    }

    /// Called by the log copiers with what they read.
    pub fn publish(&self, stream: Stream, data: &[u8]) {
        if let Some(tx) = &self.output().tx
            && tx.receiver_count() > 0
        {
            let _ = tx.send(Output::Data(stream, Bytes::copy_from_slice(data)));
        }
    }

    /// A copier saw its FIFO close; `true` when it was the last one (the output has ended).
    fn copier_done(&self) -> bool {
        let mut out = self.output();
        out.copiers = out.copiers.saturating_sub(1);
        if out.copiers > 0 {
            return false;
        }
        if let Some(tx) = out.tx.take() {
            let _ = tx.send(Output::End);
        }
        true
    }

    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), StdinError> {
        let mut st = self.stdin.lock().await;
        match &mut *st {
            Stdin::Absent => Err(StdinError::Absent),
            Stdin::Closed => Err(StdinError::Closed),
            Stdin::Open { tx, .. } => tx
                .write_all(data)
                .await
                .map_err(|e| StdinError::Write(e.to_string())),
        }
    }

    /// Close the agent's end of stdin and remove the FIFO; `true` if it was open (the caller then asks
    /// containerd to close the process's stdin).
    async fn close_stdin(&self) -> bool {
        let mut st = self.stdin.lock().await;
        let Stdin::Open { fifo, .. } = std::mem::replace(&mut *st, Stdin::Closed) else {
            return false;
        };
        let _ = tokio::fs::remove_file(&fifo).await;
        true
    }
}

/// The stdio of every running container this agent started or adopted, by container id.
#[derive(Clone, Default)]
pub struct IoRegistry {
    map: Arc<Mutex<HashMap<String, Arc<ContainerIo>>>>,
}

impl IoRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ContainerIo>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<ContainerIo>> {
        self.lock().get(id).cloned()
    }

    /// Register a container's stdio; the returned handles go to its log copiers.
    pub fn register(
        &self,
        id: &str,
        config: StdioConfig,
        copiers: usize,
        stdin: Option<(PathBuf, pipe::Sender)>,
    ) -> Arc<ContainerIo> {
        let io = Arc::new(ContainerIo::new(config, copiers, stdin));
        self.lock().insert(id.to_string(), io.clone());
        io
    }

    /// One of the container's copiers ended; the last one removes the entry (unless a newer one replaced it).
    pub fn copier_done(&self, id: &str, io: &Arc<ContainerIo>) {
        if io.copier_done() {
            let mut map = self.lock();
            if map.get(id).is_some_and(|cur| Arc::ptr_eq(cur, io)) {
                map.remove(id);
            }
        }
    }
}

/// `<run-dir>/io/<pod-uid>/<container-id>-stdin`.
pub fn stdin_path(run_dir: &Path, pod_uid: &str, container_id: &str) -> PathBuf {
    run_dir
        .join("io")
        .join(pod_uid)
        .join(format!("{container_id}-stdin"))
}

/// Open a container's stdin FIFO for writing without waiting for a reader (the shim opens its end later).
pub fn open_stdin(path: &Path) -> std::io::Result<pipe::Sender> {
    pipe::OpenOptions::new().read_write(true).open_sender(path)
}

impl super::Runtime {
    pub fn container_io(&self, id: &str) -> Option<Arc<ContainerIo>> {
        self.io.get(id)
    }

    /// Close a container's stdin: the agent's FIFO end, then the shim's (the process reads end of file).
    pub async fn close_stdin(&self, id: &str, io: &ContainerIo) {
        if !io.close_stdin().await {
            return;
        }
        use containerd_client::services::v1::CloseIoRequest;
        use containerd_client::services::v1::tasks_client::TasksClient;
        let res = TasksClient::new(self.cd.channel())
            .close_io(self.cd.req(CloseIoRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                stdin: true,
            }))
            .await;
        if let Err(e) = res {
            tracing::debug!(container = %id, error = %e, "close stdin failed");
        }
    }

    /// Set the terminal size of a container started with a tty.
    pub async fn resize_pty(&self, id: &str, width: u32, height: u32) {
        use containerd_client::services::v1::ResizePtyRequest;
        use containerd_client::services::v1::tasks_client::TasksClient;
        let res = TasksClient::new(self.cd.channel())
            .resize_pty(self.cd.req(ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                width,
                height,
            }))
            .await;
        if let Err(e) = res {
            tracing::debug!(container = %id, error = %e, "resize failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn temp_fifo(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("skiff-stdio-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let p = dir.join(name);
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[tokio::test]
    async fn output_reaches_subscribers_until_the_last_copier_ends() {
        let reg = IoRegistry::default();
        let io = reg.register("c1", StdioConfig::default(), 2, None);
        // Nobody listens: nothing is buffered for later subscribers.
        io.publish(Stream::Stdout, b"early");
        let mut rx = io.subscribe().unwrap_or_else(|| panic!("ended too soon"));
        io.publish(Stream::Stdout, b"$ ");
        io.publish(Stream::Stderr, b"oops\n");
        reg.copier_done("c1", &io);
        assert!(reg.get("c1").is_some(), "one copier still runs");
        reg.copier_done("c1", &io);
        assert!(reg.get("c1").is_none());
        let mut got = Vec::new();
        loop {
            match rx.recv().await {
                Ok(Output::Data(s, b)) => got.push((s, b.to_vec())),
                Ok(Output::End) => break,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, b"$ ".to_vec()),
                (Stream::Stderr, b"oops\n".to_vec())
            ]
        );
        assert!(io.subscribe().is_none(), "a late subscriber learns the end");
    }

    #[tokio::test]
    async fn a_replaced_entry_is_not_removed_by_the_old_copiers() {
        let reg = IoRegistry::default();
        let old = reg.register("c1", StdioConfig::default(), 1, None);
        let new = reg.register("c1", StdioConfig::default(), 1, None);
        reg.copier_done("c1", &old);
        assert!(reg.get("c1").is_some_and(|cur| Arc::ptr_eq(&cur, &new)));
    }

    #[tokio::test]
    async fn stdin_writes_reach_the_fifo_and_close_once() {
        let fifo = temp_fifo("c-stdin");
        let mut reader = pipe::OpenOptions::new()
            .open_receiver(&fifo)
            .unwrap_or_else(|e| panic!("{e}"));
        let tx = open_stdin(&fifo).unwrap_or_else(|e| panic!("{e}"));
        let cfg = StdioConfig {
            stdin: true,
            stdin_once: true,
            tty: false,
        };
        let io = ContainerIo::new(cfg, 1, Some((fifo.clone(), tx)));
        io.write_stdin(b"hello\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 16];
        let n = reader.read(&mut buf).await.unwrap_or(0);
        assert_eq!(&buf[..n], b"hello\n");
        assert!(io.close_stdin().await);
        assert!(!fifo.exists(), "closing removes the FIFO");
        assert!(!io.close_stdin().await, "only once");
        assert_eq!(io.write_stdin(b"x").await, Err(StdinError::Closed));
        // The only writer is gone: the reader sees end of file.
        assert_eq!(reader.read(&mut buf).await.unwrap_or(1), 0);
        let none = ContainerIo::new(StdioConfig::default(), 1, None);
        assert_eq!(none.write_stdin(b"x").await, Err(StdinError::Absent));
        if let Some(dir) = fifo.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
