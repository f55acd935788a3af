//! Host directories of hostPath volumes and of the PersistentVolumes behind claims: the kubelet's hostPath
//! `type` checks, `DirectoryOrCreate` with the right mode, and `local` paths that must exist.

use std::path::{Path, PathBuf};

use super::VolumeError;
use super::claims::{self, DIR_MODE};

/// Create a `DirectoryOrCreate` directory (and its parents, 0755 as the kubelet's `MkdirAll`); a directory
/// made here whose mode should be wider than the umask allows gets exactly `mode`.
async fn create_dir(p: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(p)
        .await?;
    if mode != DIR_MODE {
        tokio::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).await?;
    }
    Ok(())
}

/// Check (or create) a hostPath of type `typ`; `dir_mode` is the mode of a directory made for
/// `DirectoryOrCreate`.
pub(super) async fn host_path(
    name: &str,
    path: &str,
    typ: &str,
    dir_mode: u32,
) -> Result<PathBuf, VolumeError> {
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
                create_dir(&p, dir_mode).await.map_err(io)?;
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

/// The host path of a resolved `persistentVolumeClaim` volume (checked or created as its PV says).
pub(super) async fn claim_path(
    name: &str,
    resolved: Option<&claims::Resolved>,
) -> Result<PathBuf, VolumeError> {
    let Some(r) = resolved else {
        return Err(VolumeError::Invalid {
            name: name.into(),
            message: "its claim was not resolved".into(),
        });
    };
    match &r.source {
        claims::Source::HostPath {
            path,
            type_,
            dir_mode,
        } => host_path(name, path, type_, *dir_mode).await,
        claims::Source::Local { path } => {
            let p = PathBuf::from(path);
            if !p.is_absolute() || !tokio::fs::try_exists(&p).await.unwrap_or(false) {
                return Err(VolumeError::SetUp {
                    name: name.into(),
                    message: format!(
                        "path {path:?} of PersistentVolume {} does not exist",
                        r.volume
                    ),
                });
            }
            Ok(p)
        }
    }
}
