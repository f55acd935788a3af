//! Pod volumes on the host: emptyDir directories under the pod directory, hostPath checks, the
//! kubelet-style atomically written configMap, secret (on a tmpfs), downwardAPI and projected volumes, and
//! persistentVolumeClaim and generic ephemeral volumes whose PersistentVolume is a `hostPath` or `local`
//! directory ([`claims`]; their clean-up is [`storage_gc`]). Other volume types are reported as a clear
//! configuration error.

pub mod atomic;
pub mod claims;
mod host_path;
pub mod objects;
pub mod ownership;
pub mod projection;
pub mod storage_gc;
pub mod tokens;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::runtime::spec::BindMount;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {name:?}: {kind} volumes are not supported yet")]
    Unsupported { name: String, kind: String },
    #[error("volume {name:?}: {message}")]
    Invalid { name: String, message: String },
    /// The kubelet's wording for a configMap/secret/downwardAPI/projected volume that cannot be built.
    #[error("MountVolume.SetUp failed for volume {name:?} : {message}")]
    SetUp { name: String, message: String },
    #[error("volume {name:?}: {path}: {source}")]
    Io {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("volumeMount {mount:?} of container {container:?}: {message}")]
    Mount {
        container: String,
        mount: String,
        message: String,
    },
}

/// `<root-dir>/pods/<uid>`
pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

pub fn empty_dir_path(pod_dir: &Path, name: &str) -> PathBuf {
    pod_dir
        .join("volumes")
        .join("kubernetes.io~empty-dir")
        .join(name)
}

/// Directory kinds of volumes whose content the agent writes; they are mounted read-only.
const WRITTEN_KINDS: [&str; 4] = [
    "kubernetes.io~configmap",
    "kubernetes.io~secret",
    "kubernetes.io~downward-api",
    "kubernetes.io~projected",
];

fn volume_path(pod_dir: &Path, kind: &str, name: &str) -> PathBuf {
    pod_dir.join("volumes").join(kind).join(name)
}

fn is_written_volume(p: &Path) -> bool {
    p.parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .is_some_and(|n| WRITTEN_KINDS.contains(&n))
}

/// Write a configMap/secret/downwardAPI/projected volume (secrets on a tmpfs); unchanged content is
/// left alone, so calling this again is the periodic re-sync.
async fn write_volume(
    name: &str,
    path: &Path,
    payload: Result<atomic::Payload, String>,
    memory: bool,
    fs_group: Option<i64>,
    policy: ownership::ChangePolicy,
) -> Result<(), VolumeError> {
    let mut payload = payload.map_err(|message| VolumeError::SetUp {
        name: name.into(),
        message,
    })?;
    let group = match fs_group {
        Some(g) => Some(u32::try_from(g).map_err(|_| VolumeError::Invalid {
            name: name.into(),
            message: format!("fsGroup {g} out of range"),
        })?),
        None => None,
    };
    if group.is_some() {
        // The kubelet's SetVolumeOwnership for read-only content: group-readable.
        for f in payload.values_mut() {
            f.mode |= 0o440;
        }
    }
    let io = |source| VolumeError::Io {
        name: name.into(),
        path: path.display().to_string(),
        source,
    };
    let target = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        std::fs::create_dir_all(&target)?;
        if memory {
            mount_tmpfs(&target, None)?;
        }
        let changed = atomic::write(&target, &payload, group)?;
        if changed && let Some(g) = group {
            ownership::set(&target, g, true, policy)?;
        }
        Ok(changed)
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
    .map_err(io)?;
    Ok(())
}

/// The volume source a volume has, as the pod spec names it (`nfs`, `csi`, …).
fn kind(v: &Volume) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| {
            j.as_object()
                .and_then(|m| m.keys().find(|k| k.as_str() != "name").cloned())
        })
        .unwrap_or_else(|| "sourceless".into())
}

/// Create what the pod's volumes need on the host; returns volume name → host path. `objects` holds the
/// configMaps and secrets the volumes refer to ([`objects::Refs::volumes`]) and the resolved claims.
pub async fn prepare(
    pod_dir: &Path,
    pod: &Pod,
    objects: &objects::Objects,
) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let mut out = HashMap::new();
    let fs_group = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group);
    let group = match fs_group {
        Some(g) => Some(u32::try_from(g).map_err(|_| VolumeError::Invalid {
            name: "(securityContext)".into(),
            message: format!("fsGroup {g} out of range"),
        })?),
        None => None,
    };
    let policy = ownership::ChangePolicy::from_spec(
        pod.spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|s| s.fs_group_change_policy.as_deref()),
    );
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let path = if let Some(ed) = &v.empty_dir {
            let p = empty_dir_path(pod_dir, &v.name);
            let io = |source| VolumeError::Io {
                name: v.name.clone(),
                path: p.display().to_string(),
                source,
            };
            // Like the kubelet's set-up marker: permissions and ownership are set once, when created.
            let fresh = !tokio::fs::try_exists(&p).await.unwrap_or(false);
            tokio::fs::create_dir_all(&p).await.map_err(io)?;
            if ed.medium.as_deref() == Some("Memory") {
                let size = match ed.size_limit.as_ref() {
                    Some(q) => Some(crate::runtime::quantity::bytes(&q.0).map_err(|message| {
                        VolumeError::Invalid {
                            name: v.name.clone(),
                            message,
                        }
                    })?),
                    None => None,
                };
                let target = p.clone();
                tokio::task::spawn_blocking(move || mount_tmpfs(&target, size))
                    .await
                    .map_err(|e| io(std::io::Error::other(e)))?
                    .map_err(io)?;
            }
            // emptyDir is world-writable (the kubelet's 0777, whatever the umask), then fsGroup's.
            let target = p.clone();
            if fresh {
                tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                    use std::os::unix::fs::PermissionsExt as _;
                    let mode = std::fs::metadata(&target)?.permissions().mode();
                    if mode & 0o777 != 0o777 {
                        std::fs::set_permissions(
                            &target,
                            std::fs::Permissions::from_mode(mode & 0o7000 | 0o777),
                        )?;
                    }
                    if let Some(g) = group {
                        ownership::set(&target, g, false, policy)?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)?;
            }
            p
        } else if let Some(hp) = &v.host_path {
            host_path::host_path(
                &v.name,
                &hp.path,
                hp.type_.as_deref().unwrap_or_default(),
                claims::DIR_MODE,
            )
            .await?
        } else if v.persistent_volume_claim.is_some() || v.ephemeral.is_some() {
            // Bind-mounted as it is: the kubelet changes no ownership of host-path volumes (no fsGroup).
            host_path::claim_path(&v.name, objects.claims.get(&v.name)).await?
        } else if let Some(cm) = &v.config_map {
            let p = volume_path(pod_dir, WRITTEN_KINDS[0], &v.name);
            write_volume(
                &v.name,
                &p,
                projection::config_map(cm, objects),
                false,
                fs_group,
                policy,
            )
            .await?;
            p
        } else if let Some(sec) = &v.secret {
            let p = volume_path(pod_dir, WRITTEN_KINDS[1], &v.name);
            write_volume(
                &v.name,
                &p,
                projection::secret(sec, objects),
                true,
                fs_group,
                policy,
            )
            .await?;
            p
        } else if let Some(dw) = &v.downward_api {
            let p = volume_path(pod_dir, WRITTEN_KINDS[2], &v.name);
            let payload = projection::downward_api(pod, dw.items.as_ref(), dw.default_mode);
            write_volume(&v.name, &p, payload, false, fs_group, policy).await?;
            p
        } else if let Some(pr) = &v.projected {
            let p = volume_path(pod_dir, WRITTEN_KINDS[3], &v.name);
            let payload = projection::projected(pod, &v.name, pr, objects);
            write_volume(&v.name, &p, payload, true, fs_group, policy).await?;
            p
        } else {
            return Err(VolumeError::Unsupported {
                name: v.name.clone(),
                kind: kind(v),
            });
        };
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

/// Re-write the configMap/secret/projected volumes from the objects as they are now (the kubelet's
/// periodic re-sync); files change only when the content did. A missing object keeps the old files.
/// `claims` are the pod's claims as resolved at its start (not fetched again).
pub async fn refresh(
    client: &kube::Client,
    tokens: &tokens::Tokens,
    pod_dir: &Path,
    pod: &Pod,
    claims: &HashMap<String, claims::Resolved>,
) -> Result<(), String> {
    let refs = objects::Refs::volumes(pod);
    if refs.is_empty() && tokens::wanted(pod).is_empty() {
        return Ok(());
    }
    let mut objects = objects::Objects::for_volumes(client, tokens, pod).await?;
    objects.claims = claims.clone();
    prepare(pod_dir, pod, &objects)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Mount a tmpfs for an emptyDir with `medium: Memory` (idempotent: an existing tmpfs stays).
fn mount_tmpfs(target: &Path, size: Option<i64>) -> std::io::Result<()> {
    if is_mount_point(target) {
        return Ok(());
    }
    let data = match size {
        Some(b) if b > 0 => format!("mode=0777,size={b}"),
        _ => "mode=0777".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(std::io::Error::from)
}

fn mount_points_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    out
}

/// Whether a directory is the root of a mount: its device differs from its parent's (a tmpfs mounted on it
/// has a device of its own). Two `stat`s, not a read of `/proc/self/mountinfo`: that file lists every pod's
/// mounts (sandbox namespaces, rootfs, token tmpfs: ~6 a pod) and each pod's secret and projected volumes ask
/// this at every re-sync ([`refresh`], once a minute), so reading it made the idle agent's CPU grow with the
/// square of the pod count (100 pods: 100 reads of ~117 KB a minute, most of the idle agent's CPU). A bind
/// mount of a directory of the same filesystem is not seen; the agent makes none on these paths.
fn is_mount_point(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(parent) = p.parent() else {
        // `/` (or an empty path, which the stat below rejects).
        return p.metadata().is_ok();
    };
    match (p.metadata(), parent.metadata()) {
        (Ok(m), Ok(up)) => m.dev() != up.dev(),
        _ => false,
    }
}

/// Unmount what the agent mounted under a pod directory (memory-backed emptyDirs) so it can be removed.
/// Blocking; returns the errors seen.
pub fn unmount_below(pod_dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    for m in mount_points_below(pod_dir) {
        if let Err(e) = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH) {
            errors.push(format!("umount {}: {e}", m.display()));
        }
    }
    errors
}

/// The container's volumeMounts as bind mounts (subPath joined without escaping the volume); read-only when
/// the mount says so, for content the agent writes, and for claims the pod asks read-only.
pub fn mounts(
    pod: &Pod,
    container: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<BindMount>, VolumeError> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let err = |message: String| VolumeError::Mount {
            container: container.name.clone(),
            mount: m.name.clone(),
            message,
        };
        let Some(src) = volumes.get(&m.name) else {
            return Err(err("no volume of that name".into()));
        };
        if !m.mount_path.starts_with('/') {
            return Err(err(format!("mountPath {:?} is not absolute", m.mount_path)));
        }
        let mut source = src.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sp = Path::new(sub);
            if sp.is_absolute() || sp.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(err(format!(
                    "subPath {sub:?} must be a relative path inside the volume"
                )));
            }
            source = source.join(sp);
        }
        out.push(BindMount {
            source,
            destination: m.mount_path.clone(),
            readonly: m.read_only.unwrap_or(false)
                || is_written_volume(src)
                || claims::read_only(pod, &m.name),
        });
    }
    Ok(out)
}

/// Create the subPath directories that do not exist yet (kubelet does the same).
pub async fn ensure_sources(mounts: &[BindMount]) -> std::io::Result<()> {
    for m in mounts {
        if tokio::fs::metadata(&m.source).await.is_err() {
            tokio::fs::create_dir_all(&m.source).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
