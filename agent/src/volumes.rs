//! Pod volumes on the host: emptyDir directories under the pod directory and hostPath checks.
//! Other volume types are reported as a clear configuration error for now.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};

use crate::runtime::spec::BindMount;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {name:?}: {kind} volumes are not supported yet")]
    Unsupported { name: String, kind: &'static str },
    #[error("volume {name:?}: {message}")]
    Invalid { name: String, message: String },
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

fn kind(v: &Volume) -> &'static str {
    if v.config_map.is_some() {
        "configMap"
    } else if v.secret.is_some() {
        "secret"
    } else if v.projected.is_some() {
        "projected"
    } else if v.downward_api.is_some() {
        "downwardAPI"
    } else if v.persistent_volume_claim.is_some() {
        "persistentVolumeClaim"
    } else {
        "this kind of"
    }
}

async fn host_path(name: &str, path: &str, typ: &str) -> Result<PathBuf, VolumeError> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(VolumeError::Invalid {
            name: name.into(),
            message: format!("hostPath {path:?} is not absolute"),
        });
    }
    let io = |source| VolumeError::Io {
        name: name.into(),
        path: path.into(),
        source,
    };
    let meta = tokio::fs::metadata(&p).await;
    let wrong = |what: &str| VolumeError::Invalid {
        name: name.into(),
        message: format!("hostPath {path:?} is not {what}"),
    };
    match typ {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                tokio::fs::create_dir_all(&p).await.map_err(io)?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return Err(wrong("a directory"));
            }
        }
        "Directory" => {
            if !meta.map_err(io)?.is_dir() {
                return Err(wrong("a directory"));
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(io)?;
                }
                tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&p)
                    .await
                    .map_err(io)?;
            } else if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return Err(wrong("a file"));
            }
        }
        "File" => {
            if !meta.map_err(io)?.is_file() {
                return Err(wrong("a file"));
            }
        }
        "Socket" | "CharDevice" | "BlockDevice" => {
            use std::os::unix::fs::FileTypeExt;
            let ft = meta.map_err(io)?.file_type();
            let ok = match typ {
                "Socket" => ft.is_socket(),
                "CharDevice" => ft.is_char_device(),
                _ => ft.is_block_device(),
            };
            if !ok {
                return Err(wrong(typ));
            }
        }
        other => {
            return Err(VolumeError::Invalid {
                name: name.into(),
                message: format!("unknown hostPath type {other:?}"),
            });
        }
    }
    Ok(p)
}

/// Create what the pod's volumes need on the host; returns volume name → host path.
pub async fn prepare(pod_dir: &Path, pod: &Pod) -> Result<HashMap<String, PathBuf>, VolumeError> {
    let mut out = HashMap::new();
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
            p
        } else if let Some(hp) = &v.host_path {
            host_path(&v.name, &hp.path, hp.type_.as_deref().unwrap_or_default()).await?
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

fn is_mount_point(p: &Path) -> bool {
    mount_points_below(p).iter().any(|m| m == p)
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

/// The container's volumeMounts as bind mounts (subPath joined without escaping the volume).
pub fn mounts(
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
            readonly: m.read_only.unwrap_or(false),
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
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EmptyDirVolumeSource, PodSpec, SecretVolumeSource, VolumeMount,
    };

    fn pod(vols: Vec<Volume>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                volumes: Some(vols),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn empty_dir_and_unsupported() {
        let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
        let p = pod(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
        let vols = prepare(&dir, &p).await.expect("prepare");
        let path = vols.get("scratch").cloned().unwrap_or_default();
        assert_eq!(path, dir.join("volumes/kubernetes.io~empty-dir/scratch"));
        assert!(path.is_dir());
        let p = pod(vec![Volume {
            name: "s".into(),
            secret: Some(SecretVolumeSource::default()),
            ..Default::default()
        }]);
        let e = prepare(&dir, &p).await.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("volume \"s\": secret volumes are not supported yet")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Needs root (mounts a tmpfs); fails loudly without it.
    #[tokio::test]
    async fn memory_empty_dir_is_tmpfs() {
        let dir = std::env::temp_dir().join(format!("skiff-vol-{}", uuid::Uuid::new_v4()));
        let p = pod(vec![Volume {
            name: "mem".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "8Mi".into(),
                )),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let vols = prepare(&dir, &p).await.expect("prepare");
        let path = vols.get("mem").cloned().unwrap_or_default();
        assert!(is_mount_point(&path), "tmpfs mounted at {}", path.display());
        prepare(&dir, &p).await.expect("prepare is idempotent");
        assert_eq!(mount_points_below(&dir).len(), 1);
        assert!(unmount_below(&dir).is_empty());
        assert!(!is_mount_point(&path));
        std::fs::remove_dir_all(&dir).expect("pod dir removable");
    }

    #[test]
    fn mounts_and_sub_paths() {
        let vols = HashMap::from([("data".to_string(), PathBuf::from("/v/data"))]);
        let mut c = Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/data".into(),
                read_only: Some(true),
                sub_path: Some("x/y".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let m = mounts(&c, &vols).expect("mounts");
        assert_eq!(
            m,
            vec![BindMount {
                source: "/v/data/x/y".into(),
                destination: "/data".into(),
                readonly: true
            }]
        );
        if let Some(vm) = c.volume_mounts.as_mut() {
            vm[0].sub_path = Some("../etc".into());
        }
        assert!(mounts(&c, &vols).is_err());
        if let Some(vm) = c.volume_mounts.as_mut() {
            vm[0].sub_path = None;
            vm[0].name = "nope".into();
        }
        assert!(mounts(&c, &vols).is_err());
    }
}
