//! The container runtime side of the agent: containerd containers and tasks, OCI specs, cgroups, logs,
//! and the containerd event stream (the evented PLEG).

pub mod cgroups;
pub mod container;
pub mod events;
pub mod labels;
pub mod log_files;
pub mod logs;
pub mod quantity;
pub mod seccomp;
pub mod spec;
pub mod stdio;
mod syscalls;
pub mod usage;
pub mod userdb;

use std::path::PathBuf;

use crate::containerd::Containerd;

pub use container::{ContainerRecord, CreateRequest, Started, TaskState, TaskStatus};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("containerd {op} of {id} failed: {source}")]
    Grpc {
        op: &'static str,
        id: String,
        #[source]
        source: tonic::Status,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid container spec: {0}")]
    Spec(String),
}

impl RuntimeError {
    pub(crate) fn grpc(
        op: &'static str,
        id: &str,
    ) -> impl FnOnce(tonic::Status) -> RuntimeError + use<> {
        let id = id.to_string();
        move |source| RuntimeError::Grpc { op, id, source }
    }
}

/// containerd plus the agent's local paths; cheap to clone (one shared gRPC channel).
#[derive(Clone)]
pub struct Runtime {
    pub(crate) cd: Containerd,
    pub(crate) run_dir: PathBuf,
    pub cgroup_v2: bool,
    /// Live stdio of running containers (attach).
    pub(crate) io: stdio::IoRegistry,
}

impl Runtime {
    pub fn new(cd: Containerd, run_dir: PathBuf) -> Self {
        Self {
            cd,
            run_dir,
            cgroup_v2: cgroups::is_v2(),
            io: stdio::IoRegistry::default(),
        }
    }

    pub fn containerd(&self) -> &Containerd {
        &self.cd
    }

    pub fn run_dir(&self) -> &std::path::Path {
        &self.run_dir
    }
}

pub(crate) fn timestamp(t: Option<&prost_types::Timestamp>) -> Option<jiff::Timestamp> {
    let t = t?;
    if t.seconds <= 0 {
        return None;
    }
    jiff::Timestamp::new(t.seconds, t.nanos).ok()
}
