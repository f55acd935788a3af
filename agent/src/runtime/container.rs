//! Container lifecycle against containerd: snapshot → container → task → start, and the way back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime as RuntimeInfo;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest, UpdateContainerRequest,
};
use containerd_client::types::Mount;
use containerd_client::types::v1::Status as ProcStatus;
use oci_spec::runtime::Spec;
use tonic::Code;

use super::labels::{self, ContainerMeta};
use super::logs::{self, Live, Stream};
use super::stdio::{self, StdioConfig};
use super::{Runtime, RuntimeError, spec, timestamp};

pub const SNAPSHOTTER: &str = "overlayfs";
pub const RUNC: &str = "io.containerd.runc.v2";
/// OCI annotation the runc v2 shim groups containers by: those with the same value share one shim process.
pub const SHIM_GROUP: &str = "io.containerd.runc.v2.group";

pub struct CreateRequest {
    pub meta: ContainerMeta,
    pub image_ref: String,
    pub chain_id: String,
    pub spec: Spec,
    pub log_path: PathBuf,
    /// stdin / tty of the container (the spec's `process.terminal` must match `tty`).
    pub stdio: StdioConfig,
}

#[derive(Debug, Clone)]
pub struct Started {
    pub id: String,
    pub pid: u32,
    pub started_at: jiff::Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Created,
    Running,
    Stopped,
    Paused,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct TaskState {
    pub id: String,
    pub status: TaskStatus,
    pub pid: u32,
    pub exit_status: u32,
    pub exited_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone)]
pub struct ContainerRecord {
    pub id: String,
    /// The image reference the container was created from.
    pub image: String,
    pub meta: ContainerMeta,
    pub labels: HashMap<String, String>,
    pub created_at: Option<jiff::Timestamp>,
}

fn ok_if_missing(res: Result<(), tonic::Status>) -> Result<(), tonic::Status> {
    match res {
        Err(s) if s.code() == Code::NotFound => Ok(()),
        other => other,
    }
}

impl Runtime {
    /// `containerd://…` version string for the Node's nodeInfo.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let v = VersionClient::new(self.cd.channel())
            .version(tonic::Request::new(()))
            .await
            .map_err(RuntimeError::grpc("version", "-"))?
            .into_inner();
        Ok(v.version)
    }

    /// Create the container record, prepare its rootfs snapshot, create the task with FIFO stdio
    /// and start it. On any failure everything created so far is removed again.
    pub async fn create_and_start(&self, mut req: CreateRequest) -> Result<Started, RuntimeError> {
        // One shim per pod, as CRI has one per sandbox: a pod's later containers skip the shim daemon's
        // spawn, and a node holds one shim process per pod rather than per container.
        let mut annotations = req.spec.annotations().clone().unwrap_or_default();
        annotations.insert(SHIM_GROUP.to_string(), req.meta.pod_uid.clone());
        req.spec.set_annotations(Some(annotations));
        let id = req.meta.container_id();
        let res = self.create_inner(&req, &id).await;
        if res.is_err() {
            self.remove(&id).await;
        }
        res
    }

    /// The container record is written before its snapshot exists: the record references the
    /// snapshot key, so containerd's GC keeps the snapshot from the moment it is prepared, and no
    /// lease (two more metadata transactions and a GC trigger per container) is needed.
    async fn create_inner(&self, req: &CreateRequest, id: &str) -> Result<Started, RuntimeError> {
        let container = Container {
            id: id.to_string(),
            labels: req.meta.labels(),
            image: req.image_ref.clone(),
            runtime: Some(RuntimeInfo {
                name: RUNC.to_string(),
                options: None,
            }),
            spec: Some(spec::to_any(&req.spec).map_err(RuntimeError::Spec)?),
            snapshotter: SNAPSHOTTER.to_string(),
            snapshot_key: id.to_string(),
            ..Default::default()
        };
        let mut containers = ContainersClient::new(self.cd.channel());
        let create = CreateContainerRequest {
            container: Some(container.clone()),
        };
        match containers.create(self.cd.req(create)).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {
                // A record left by a crash between create and start: replace it.
                ok_if_missing(
                    containers
                        .delete(self.cd.req(DeleteContainerRequest { id: id.to_string() }))
                        .await
                        .map(|_| ()),
                )
                .map_err(RuntimeError::grpc("container delete", id))?;
                containers
                    .create(self.cd.req(CreateContainerRequest {
                        container: Some(container),
                    }))
                    .await
                    .map_err(RuntimeError::grpc("container create", id))?;
            }
            Err(s) => {
                return Err(RuntimeError::Grpc {
                    op: "container create",
                    id: id.to_string(),
                    source: s,
                });
            }
        }

        let mut snaps = SnapshotsClient::new(self.cd.channel());
        let prepare = PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_string(),
            key: id.to_string(),
            parent: req.chain_id.clone(),
            labels: HashMap::new(),
        };
        let mounts: Vec<Mount> = match snaps.prepare(self.cd.req(prepare)).await {
            Ok(r) => r.into_inner().mounts,
            Err(s) if s.code() == Code::AlreadyExists => {
                snaps
                    .mounts(self.cd.req(MountsRequest {
                        snapshotter: SNAPSHOTTER.to_string(),
                        key: id.to_string(),
                    }))
                    .await
                    .map_err(RuntimeError::grpc("snapshot mounts", id))?
                    .into_inner()
                    .mounts
            }
            Err(s) => {
                return Err(RuntimeError::Grpc {
                    op: "snapshot prepare",
                    id: id.to_string(),
                    source: s,
                });
            }
        };

        let tty = req.stdio.tty;
        let outputs = self.output_fifos(&req.meta.pod_uid, id, tty);
        let stdin_fifo = req
            .stdio
            .stdin
            .then(|| stdio::stdin_path(&self.run_dir, &req.meta.pod_uid, id));
        let fifos: Vec<PathBuf> = outputs
            .iter()
            .map(|(p, _)| p.clone())
            .chain(stdin_fifo.clone())
            .collect();
        let l = req.log_path.clone();
        let made = fifos.clone();
        tokio::task::spawn_blocking(move || logs::create_fifos(&made, &l))
            .await
            .map_err(|e| RuntimeError::Io {
                context: "fifo task".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| RuntimeError::Io {
                context: format!("create stdio FIFOs of {id}"),
                source,
            })?;
        let output_fifos: Vec<PathBuf> = outputs.iter().map(|(p, _)| p.clone()).collect();
        let keep = logs::keepalive(&output_fifos).map_err(|source| RuntimeError::Io {
            context: format!("open stdio FIFOs of {id}"),
            source,
        })?;
        let stdin_tx = match &stdin_fifo {
            Some(p) => Some((
                p.clone(),
                stdio::open_stdin(p).map_err(|source| RuntimeError::Io {
                    context: format!("open stdin FIFO of {id}"),
                    source,
                })?,
            )),
            None => None,
        };
        let path_of = |p: Option<&PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();

        let mut tasks = TasksClient::new(self.cd.channel());
        let create = CreateTaskRequest {
            container_id: id.to_string(),
            rootfs: mounts,
            stdin: path_of(stdin_fifo.as_ref()),
            stdout: path_of(output_fifos.first()),
            stderr: path_of(output_fifos.get(1)),
            terminal: tty,
            ..Default::default()
        };
        let created = tasks
            .create(self.cd.req(create))
            .await
            .map_err(RuntimeError::grpc("task create", id))?;
        let pid = created.into_inner().pid;
        let failed = self.follow_output(id, req.log_path.clone(), req.stdio, outputs, stdin_tx);
        if let Some((_, source)) = failed.into_iter().next() {
            return Err(RuntimeError::Io {
                context: format!("read stdio of {id}"),
                source,
            });
        }
        drop(keep);
        let m = &req.meta;
        logs::link(
            &m.pod_name,
            &m.pod_namespace,
            &m.container_name,
            id,
            &req.log_path,
        )
        .await;
        tasks
            .start(self.cd.req(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .map_err(RuntimeError::grpc("task start", id))?;
        Ok(Started {
            id: id.to_string(),
            pid,
            started_at: jiff::Timestamp::now(),
        })
    }

    /// Re-attach the log copiers (and stdin) of a task that kept running while the agent was away.
    pub fn reattach_logs(&self, meta: &ContainerMeta, log_path: PathBuf, config: StdioConfig) {
        let id = meta.container_id();
        let outputs = self.output_fifos(&meta.pod_uid, &id, config.tty);
        // The FIFO is removed when stdin is closed: gone means closed.
        let stdin_fifo = stdio::stdin_path(&self.run_dir, &meta.pod_uid, &id);
        let stdin = if config.stdin && stdin_fifo.exists() {
            match stdio::open_stdin(&stdin_fifo) {
                Ok(tx) => Some((stdin_fifo, tx)),
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "cannot re-open container stdin");
                    None
                }
            }
        } else {
            None
        };
        for (fifo, e) in self.follow_output(&id, log_path, config, outputs, stdin) {
            tracing::warn!(container = %id, fifo = %fifo.display(), error = %e, "cannot re-open container output");
        }
    }

    /// The output FIFOs of a container: stdout and stderr, or with a terminal stdout only (the shim copies
    /// the console there).
    fn output_fifos(&self, pod_uid: &str, id: &str, tty: bool) -> Vec<(PathBuf, Stream)> {
        let (stdout, stderr) = logs::fifo_paths(&self.run_dir, pod_uid, id);
        let mut outputs = vec![(stdout, Stream::Stdout)];
        if !tty {
            outputs.push((stderr, Stream::Stderr));
        }
        outputs
    }

    /// Register the container's live stdio and start a log copier per output FIFO; returns the FIFOs that
    /// could not be opened.
    fn follow_output(
        &self,
        id: &str,
        log_path: PathBuf,
        config: StdioConfig,
        outputs: Vec<(PathBuf, Stream)>,
        stdin: Option<(PathBuf, tokio::net::unix::pipe::Sender)>,
    ) -> Vec<(PathBuf, std::io::Error)> {
        let shared = logs::shared_log(log_path);
        let io = self.io.register(id, config, outputs.len(), stdin);
        let mut failed = Vec::new();
        for (fifo, stream) in outputs {
            let live = Live {
                registry: self.io.clone(),
                id: id.to_string(),
                io: io.clone(),
            };
            if let Err(e) = logs::spawn_copier(fifo.clone(), stream, shared.clone(), live) {
                // The entry would wait for a copier that never runs.
                self.io.copier_done(id, &io);
                failed.push((fifo, e));
            }
        }
        failed
    }

    /// Send a signal to the task's init process; a missing or finished task is not an error.
    pub async fn kill(&self, id: &str, signal: u32) -> Result<(), RuntimeError> {
        let req = KillRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
            signal,
            all: false,
        };
        match TasksClient::new(self.cd.channel())
            .kill(self.cd.req(req))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(()),
            Err(s) => Err(RuntimeError::Grpc {
                op: "task kill",
                id: id.to_string(),
                source: s,
            }),
        }
    }

    /// Delete a stopped task (reaps it, the shim exits); returns its exit status, `None` if there was no task.
    pub async fn delete_task(
        &self,
        id: &str,
    ) -> Result<Option<(u32, Option<jiff::Timestamp>)>, RuntimeError> {
        let req = DeleteTaskRequest {
            container_id: id.to_string(),
        };
        match TasksClient::new(self.cd.channel())
            .delete(self.cd.req(req))
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Some((r.exit_status, timestamp(r.exited_at.as_ref()))))
            }
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(RuntimeError::Grpc {
                op: "task delete",
                id: id.to_string(),
                source: s,
            }),
        }
    }

    pub async fn task_state(&self, id: &str) -> Result<Option<TaskState>, RuntimeError> {
        let req = GetRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        };
        match TasksClient::new(self.cd.channel())
            .get(self.cd.req(req))
            .await
        {
            Ok(r) => Ok(r.into_inner().process.map(|p| task_state(id, &p))),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(RuntimeError::Grpc {
                op: "task get",
                id: id.to_string(),
                source: s,
            }),
        }
    }

    pub async fn list_tasks(&self) -> Result<Vec<TaskState>, RuntimeError> {
        let resp = TasksClient::new(self.cd.channel())
            .list(self.cd.req(ListTasksRequest {
                filter: String::new(),
            }))
            .await
            .map_err(RuntimeError::grpc("task list", "-"))?;
        Ok(resp
            .into_inner()
            .tasks
            .iter()
            // containerd names a listed task by `id` (its container's id) and leaves `container_id` empty.
            .map(|p| {
                let id = if p.container_id.is_empty() {
                    &p.id
                } else {
                    &p.container_id
                };
                task_state(id, p)
            })
            .collect())
    }

    /// The status of every task, by container id, from one task list (instead of one query per container).
    pub async fn task_statuses(&self) -> Result<HashMap<String, TaskStatus>, RuntimeError> {
        Ok(self
            .list_tasks()
            .await?
            .into_iter()
            .map(|t| (t.id, t.status))
            .collect())
    }

    /// Containers of one pod (or of every pod) that carry skiff's labels.
    pub async fn list_containers(
        &self,
        pod_uid: Option<&str>,
    ) -> Result<Vec<ContainerRecord>, RuntimeError> {
        let req = ListContainersRequest {
            filters: vec![labels::filter(pod_uid)],
        };
        let resp = ContainersClient::new(self.cd.channel())
            .list(self.cd.req(req))
            .await
            .map_err(RuntimeError::grpc("container list", pod_uid.unwrap_or("-")))?;
        Ok(resp
            .into_inner()
            .containers
            .into_iter()
            .filter_map(|c| {
                let meta = ContainerMeta::from_labels(&c.labels)?;
                Some(ContainerRecord {
                    id: c.id,
                    image: c.image,
                    meta,
                    created_at: timestamp(c.created_at.as_ref()),
                    labels: c.labels,
                })
            })
            .collect())
    }

    /// Merge labels into a container record (used to remember how a container ended).
    pub async fn set_labels(
        &self,
        id: &str,
        labels: HashMap<String, String>,
    ) -> Result<(), RuntimeError> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let req = UpdateContainerRequest {
            container: Some(Container {
                id: id.to_string(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        };
        ContainersClient::new(self.cd.channel())
            .update(self.cd.req(req))
            .await
            .map_err(RuntimeError::grpc("container update", id))?;
        Ok(())
    }

    /// Remove a container completely: task (killed if still running), record, snapshot.
    /// Errors are logged and the removal goes on; returns the errors seen.
    pub async fn remove(&self, id: &str) -> Vec<String> {
        let mut errors = Vec::new();
        logs::unlink(id).await;
        if let Ok(Some(t)) = self.task_state(id).await
            && t.status != TaskStatus::Stopped
        {
            let _ = self.kill(id, 9).await;
            for _ in 0..50 {
                match self.task_state(id).await {
                    Ok(Some(t)) if t.status != TaskStatus::Stopped => {
                        tokio::time::sleep(Duration::from_millis(100)).await
                    }
                    _ => break,
                }
            }
        }
        if let Err(e) = self.delete_task(id).await {
            errors.push(e.to_string());
        }
        let res = ContainersClient::new(self.cd.channel())
            .delete(self.cd.req(DeleteContainerRequest { id: id.to_string() }))
            .await
            .map(|_| ());
        if let Err(s) = ok_if_missing(res) {
            errors.push(format!("container delete {id}: {s}"));
        }
        let res = SnapshotsClient::new(self.cd.channel())
            .remove(self.cd.req(RemoveSnapshotRequest {
                snapshotter: SNAPSHOTTER.to_string(),
                key: id.to_string(),
            }))
            .await
            .map(|_| ());
        if let Err(s) = ok_if_missing(res) {
            errors.push(format!("snapshot remove {id}: {s}"));
        }
        for e in &errors {
            tracing::warn!(container = %id, error = %e, "container removal");
        }
        errors
    }
}

fn task_state(id: &str, p: &containerd_client::types::v1::Process) -> TaskState {
    let status = match ProcStatus::try_from(p.status) {
        Ok(ProcStatus::Created) => TaskStatus::Created,
        Ok(ProcStatus::Running) => TaskStatus::Running,
        Ok(ProcStatus::Stopped) => TaskStatus::Stopped,
        Ok(ProcStatus::Paused) | Ok(ProcStatus::Pausing) => TaskStatus::Paused,
        _ => TaskStatus::Unknown,
    };
    TaskState {
        id: id.to_string(),
        status,
        pid: p.pid,
        exit_status: p.exit_status,
        exited_at: timestamp(p.exited_at.as_ref()),
    }
}
