//! A process started in a running container with containerd's task Exec: the container's own process
//! spec (env, user, cwd, capabilities) with the caller's command, stdio through FIFOs under
//! `<run-dir>/io/<pod-uid>/<exec-id>-{stdin,stdout,stderr}`, an optional terminal.

use std::path::{Path, PathBuf};

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, GetContainerRequest, KillRequest,
    ResizePtyRequest, StartRequest, WaitRequest,
};
use tokio::net::unix::pipe;

use crate::runtime::Runtime;

const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("containerd {op} failed: {status}")]
    Grpc {
        op: &'static str,
        status: tonic::Status,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container spec: {0}")]
    Spec(String),
}

fn grpc(op: &'static str) -> impl FnOnce(tonic::Status) -> ExecError {
    move |status| ExecError::Grpc { op, status }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExecError {
    let context = context.into();
    move |source| ExecError::Io { context, source }
}

#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub container_id: String,
    pub pod_uid: String,
    pub command: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Control of a started exec process (cheap to clone).
#[derive(Clone)]
pub struct ExecHandle {
    rt: Runtime,
    pub container_id: String,
    pub exec_id: String,
}

/// The process's stdio ends, taken by the caller's pumps.
pub struct ExecPipes {
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// The process spec of the container, with `command` and `tty` put in.
pub fn process_spec(
    container_spec: &[u8],
    command: &[String],
    tty: bool,
) -> Result<serde_json::Value, ExecError> {
    let spec: serde_json::Value =
        serde_json::from_slice(container_spec).map_err(|e| ExecError::Spec(e.to_string()))?;
    let mut process = spec
        .get("process")
        .cloned()
        .ok_or_else(|| ExecError::Spec("the container spec has no process".into()))?;
    let obj = process
        .as_object_mut()
        .ok_or_else(|| ExecError::Spec("the container's process is not an object".into()))?;
    obj.insert("args".into(), serde_json::json!(command));
    obj.insert("terminal".into(), serde_json::json!(tty));
    if !tty {
        obj.remove("consoleSize");
    }
    Ok(process)
}

fn make_fifo(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(std::io::Error::from)
}

/// FIFO paths of one exec: stdin, stdout, stderr (each `None` when that stream is not wanted).
fn fifo_paths(run_dir: &Path, req: &ExecRequest, exec_id: &str) -> [Option<PathBuf>; 3] {
    let dir = run_dir.join("io").join(&req.pod_uid);
    let p = |s: &str| dir.join(format!("{exec_id}-{s}"));
    [
        req.stdin.then(|| p("stdin")),
        req.stdout.then(|| p("stdout")),
        (req.stderr && !req.tty).then(|| p("stderr")),
    ]
}

/// Create and start the exec process. On failure nothing is left behind.
pub async fn start(
    rt: &Runtime,
    run_dir: &Path,
    req: &ExecRequest,
) -> Result<(ExecHandle, ExecPipes), ExecError> {
    let exec_id = format!("exec-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let handle = ExecHandle {
        rt: rt.clone(),
        container_id: req.container_id.clone(),
        exec_id: exec_id.clone(),
    };
    let paths = fifo_paths(run_dir, req, &exec_id);
    let res = start_inner(&handle, req, &paths).await;
    if res.is_err() {
        handle.delete().await;
    }
    remove_fifos(&paths).await;
    res.map(|p| (handle, p))
}

async fn remove_fifos(paths: &[Option<PathBuf>; 3]) {
    // The FIFOs can go as soon as both ends are open: open descriptors keep the pipes alive.
    for p in paths.iter().flatten() {
        let _ = tokio::fs::remove_file(p).await;
    }
}

async fn start_inner(
    h: &ExecHandle,
    req: &ExecRequest,
    paths: &[Option<PathBuf>; 3],
) -> Result<ExecPipes, ExecError> {
    let cd = h.rt.containerd();
    let container = ContainersClient::new(cd.channel())
        .get(cd.req(GetContainerRequest {
            id: req.container_id.clone(),
        }))
        .await
        .map_err(grpc("container get"))?
        .into_inner()
        .container
        .ok_or_else(|| ExecError::Spec("containerd returned no container".into()))?;
    let spec = container
        .spec
        .ok_or_else(|| ExecError::Spec("the container has no spec".into()))?;
    let process = process_spec(&spec.value, &req.command, req.tty)?;
    let value = serde_json::to_vec(&process).map_err(|e| ExecError::Spec(e.to_string()))?;

    let owned: Vec<PathBuf> = paths.iter().flatten().cloned().collect();
    if let Some(dir) = owned.first().and_then(|p| p.parent()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(io(format!("create {}", dir.display())))?;
    }
    tokio::task::spawn_blocking(move || owned.iter().try_for_each(|p| make_fifo(p)))
        .await
        .map_err(|e| ExecError::Io {
            context: "fifo task".into(),
            source: std::io::Error::other(e),
        })?
        .map_err(io("create exec FIFOs"))?;
    // Hold read-write ends until the shim has opened its side, so no side sees a missing peer.
    let stdin = match &paths[0] {
        Some(p) => Some(
            pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(p)
                .map_err(io("open exec stdin"))?,
        ),
        None => None,
    };
    let mut keep = Vec::new();
    for p in paths[1..].iter().flatten() {
        keep.push(
            pipe::OpenOptions::new()
                .read_write(true)
                .open_receiver(p)
                .map_err(io("open exec output"))?,
        );
    }
    let s = |p: &Option<PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mut tasks = TasksClient::new(cd.channel());
    tasks
        .exec(cd.req(ExecProcessRequest {
            container_id: req.container_id.clone(),
            stdin: s(&paths[0]),
            stdout: s(&paths[1]),
            stderr: s(&paths[2]),
            terminal: req.tty,
            spec: Some(prost_types::Any {
                type_url: PROCESS_TYPE_URL.to_string(),
                value,
            }),
            exec_id: h.exec_id.clone(),
        }))
        .await
        .map_err(grpc("exec"))?;
    tasks
        .start(cd.req(StartRequest {
            container_id: req.container_id.clone(),
            exec_id: h.exec_id.clone(),
        }))
        .await
        .map_err(grpc("exec start"))?;
    let open = |p: &Option<PathBuf>| -> Result<Option<pipe::Receiver>, ExecError> {
        match p {
            Some(p) => Ok(Some(
                pipe::OpenOptions::new()
                    .open_receiver(p)
                    .map_err(io("open exec output"))?,
            )),
            None => Ok(None),
        }
    };
    let stdout = open(&paths[1])?;
    let stderr = open(&paths[2])?;
    drop(keep);
    Ok(ExecPipes {
        stdin,
        stdout,
        stderr,
    })
}

impl ExecHandle {
    /// Wait for the process to end; its exit status.
    pub async fn wait(&self) -> Result<u32, ExecError> {
        let cd = self.rt.containerd();
        let r = TasksClient::new(cd.channel())
            .wait(cd.req(WaitRequest {
                container_id: self.container_id.clone(),
                exec_id: self.exec_id.clone(),
            }))
            .await
            .map_err(grpc("exec wait"))?;
        Ok(r.into_inner().exit_status)
    }

    pub async fn resize(&self, width: u32, height: u32) {
        let cd = self.rt.containerd();
        let res = TasksClient::new(cd.channel())
            .resize_pty(cd.req(ResizePtyRequest {
                container_id: self.container_id.clone(),
                exec_id: self.exec_id.clone(),
                width,
                height,
            }))
            .await;
        if let Err(e) = res {
            tracing::debug!(exec = %self.exec_id, error = %e, "resize failed");
        }
    }

    /// Tell the shim the process's stdin is done (after the FIFO's writer closed).
    pub async fn close_stdin(&self) {
        let cd = self.rt.containerd();
        let _ = TasksClient::new(cd.channel())
            .close_io(cd.req(CloseIoRequest {
                container_id: self.container_id.clone(),
                exec_id: self.exec_id.clone(),
                stdin: true,
            }))
            .await;
    }

    pub async fn kill(&self) {
        let cd = self.rt.containerd();
        let _ = TasksClient::new(cd.channel())
            .kill(cd.req(KillRequest {
                container_id: self.container_id.clone(),
                exec_id: self.exec_id.clone(),
                signal: 9,
                all: false,
            }))
            .await;
    }

    /// Forget the (ended) process in containerd.
    pub async fn delete(&self) {
        let cd = self.rt.containerd();
        let res = TasksClient::new(cd.channel())
            .delete_process(cd.req(DeleteProcessRequest {
                container_id: self.container_id.clone(),
                exec_id: self.exec_id.clone(),
            }))
            .await;
        if let Err(e) = res
            && e.code() != tonic::Code::NotFound
        {
            tracing::debug!(exec = %self.exec_id, error = %e, "exec delete failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_takes_command_and_tty() {
        let spec = br#"{"ociVersion":"1.0.2","process":{"args":["nginx"],"env":["A=1"],"cwd":"/","user":{"uid":0,"gid":0},"terminal":false,"consoleSize":{"height":1,"width":1}}}"#;
        let p =
            process_spec(spec, &["sh".into(), "-c".into(), "id".into()], false).unwrap_or_default();
        assert_eq!(p["args"], serde_json::json!(["sh", "-c", "id"]));
        assert_eq!(p["env"], serde_json::json!(["A=1"]));
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none());
        assert!(process_spec(b"{}", &[], true).is_err());
        assert!(process_spec(b"not json", &[], true).is_err());
    }
}
