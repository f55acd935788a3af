//! Pinned pod namespaces (the CRI-O "pinns" approach): the pod's network, IPC and UTS namespaces
//! are created once and kept alive by bind mounts at `<dir>/ns/{net,ipc,uts}`; CNI runs against
//! `net` and every container's OCI spec joins the three paths. No pause container.
//!
//! Decisions:
//! - The namespaces are created on a short-lived dedicated OS thread (`unshare` affects only the
//!   calling thread), never on a tokio worker; these functions block, call them through
//!   `spawn_blocking`.
//! - `lo` is brought up here, so a pod has loopback whatever the CNI chain (skiff-cni and the
//!   reference `loopback` plugin bring it up too; that is idempotent).
//! - The hostname is the pod name cut to 63 bytes without a trailing `-`/`.` (the kubelet's rule).
//! - `<dir>/ns` is bind-mounted onto itself and made unbindable (which is also private) before the
//!   namespace files are mounted in it: nothing created under it propagates to peer mount
//!   namespaces, and a recursive bind of an ancestor (e.g. a hostPath of /run) does not copy the
//!   pins. Copies that outlive the unmount would keep a pod's netns alive.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

const KINDS: [&str; 3] = ["net", "ipc", "uts"];

/// The pinned namespaces of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandbox {
    pub dir: PathBuf,
    pub net: PathBuf,
    pub ipc: PathBuf,
    pub uts: PathBuf,
}

impl PodSandbox {
    fn at(dir: &Path) -> PodSandbox {
        let ns = dir.join("ns");
        PodSandbox {
            dir: dir.to_path_buf(),
            net: ns.join("net"),
            ipc: ns.join("ipc"),
            uts: ns.join("uts"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: Errno,
    },
    #[error("invalid pod hostname {0:?}")]
    Hostname(String),
    #[error("namespace pinning thread panicked")]
    Panicked,
}

fn sys(context: impl Into<String>) -> impl FnOnce(Errno) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Sys { context, source }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let context = context.into();
    move |source| SandboxError::Io { context, source }
}

/// The UTS hostname for a pod name (kubelet: at most 63 bytes, no trailing `-` or `.`).
pub fn hostname_for(pod_name: &str) -> Result<String, SandboxError> {
    let mut h: String = pod_name.chars().take(63).collect();
    while h.len() > 63 {
        h.pop();
    }
    let h = h.trim_end_matches(['-', '.']).to_string();
    if h.is_empty()
        || !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(SandboxError::Hostname(pod_name.to_string()));
    }
    Ok(h)
}

fn is_pinned(p: &Path) -> bool {
    statfs(p).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// The sandbox pinned at `dir`, if all three namespaces are pinned (agent restart).
pub fn open(dir: &Path) -> Option<PodSandbox> {
    let sb = PodSandbox::at(dir);
    [&sb.net, &sb.ipc, &sb.uts]
        .iter()
        .all(|p| is_pinned(p))
        .then_some(sb)
}

/// Create and pin the pod's namespaces under `<dir>/ns`. Idempotent: an already pinned sandbox is
/// returned as is; a half-pinned one (crash during pin) is torn down and pinned again.
pub fn pin(dir: &Path, hostname: &str) -> Result<PodSandbox, SandboxError> {
    if let Some(sb) = open(dir) {
        return Ok(sb);
    }
    let hostname = hostname_for(hostname)?;
    unpin(dir)?;
    let sb = PodSandbox::at(dir);
    let ns_dir = dir.join("ns");
    fs::create_dir_all(&ns_dir)
        .map_err(io_err(format!("failed to create {}", ns_dir.display())))?;
    mount(
        Some(&ns_dir),
        &ns_dir,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(format!(
        "failed to bind {} onto itself",
        ns_dir.display()
    )))?;
    let pinned = mount(
        None::<&str>,
        &ns_dir,
        None::<&str>,
        MsFlags::MS_UNBINDABLE,
        None::<&str>,
    )
    .map_err(sys(format!(
        "failed to make {} unbindable",
        ns_dir.display()
    )))
    .and_then(|()| {
        for p in [&sb.net, &sb.ipc, &sb.uts] {
            fs::File::create(p).map_err(io_err(format!("failed to create {}", p.display())))?;
        }
        std::thread::scope(|s| {
            s.spawn(|| create_and_bind(&sb, &hostname))
                .join()
                .unwrap_or(Err(SandboxError::Panicked))
        })
    });
    if let Err(e) = pinned {
        let _ = unpin(dir);
        return Err(e);
    }
    Ok(sb)
}

/// Runs on its own thread: the new namespaces belong to this thread only, and stay alive through
/// the bind mounts after it exits.
fn create_and_bind(sb: &PodSandbox, hostname: &str) -> Result<(), SandboxError> {
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS)
        .map_err(sys("failed to unshare net/ipc/uts"))?;
    nix::unistd::sethostname(hostname)
        .map_err(sys(format!("failed to set hostname {hostname:?}")))?;
    loopback_up()?;
    let tid = nix::unistd::gettid();
    for (kind, target) in KINDS.iter().zip([&sb.net, &sb.ipc, &sb.uts]) {
        let source = format!("/proc/self/task/{tid}/ns/{kind}");
        mount(
            Some(source.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(sys(format!(
            "failed to pin {source} at {}",
            target.display()
        )))?;
    }
    Ok(())
}

fn loopback_up() -> Result<(), SandboxError> {
    use skiff_cni::plugin::netlink::Netlink;
    let mut nl = Netlink::open().map_err(io_err("failed to open netlink in the pod netns"))?;
    if let Some(lo) = nl
        .link_by_name("lo")
        .map_err(io_err("failed to look up lo"))?
        && !lo.up
    {
        nl.set_up(lo.index).map_err(io_err("failed to set lo up"))?;
    }
    Ok(())
}

fn detach(p: &Path) -> Result<(), SandboxError> {
    match umount2(p, MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point; ENOENT: already gone.
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(sys(format!("failed to unmount {}", p.display()))(e)),
    }
}

/// Unmount (lazily) and remove the pins, then `<dir>/ns`, then `dir` if nothing else is in it.
/// Idempotent.
pub fn unpin(dir: &Path) -> Result<(), SandboxError> {
    let sb = PodSandbox::at(dir);
    let ns_dir = dir.join("ns");
    for p in [&sb.net, &sb.ipc, &sb.uts] {
        // A file can carry stacked mounts if pin raced itself; peel them (bounded).
        for _ in 0..8 {
            if !is_pinned(p) {
                break;
            }
            detach(p)?;
        }
    }
    if ns_dir.exists() {
        detach(&ns_dir)?;
    }
    for p in [&sb.net, &sb.ipc, &sb.uts] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("failed to remove {}", p.display()))(e)),
        }
    }
    for d in [&ns_dir, &sb.dir] {
        match fs::remove_dir(d) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::DirectoryNotEmpty
                ) => {}
            Err(e) => return Err(io_err(format!("failed to remove {}", d.display()))(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(hostname_for("nginx").unwrap(), "nginx");
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(hostname_for(&long).unwrap(), "a".repeat(62));
        assert!(hostname_for("---").is_err());
        assert!(hostname_for("bad name").is_err());
    }
}
