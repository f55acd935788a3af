//! The kubelet's atomic writer: a volume's files live in a timestamped directory; `..data` is a
//! symlink to it, swapped with a rename, and the user-visible names are symlinks through `..data`.
//! A reader therefore sees either the old or the new set of files, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// One file of a payload: content and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, FileProjection>;

/// A payload path must be relative, without `..` elements, and must not start with `..`.
pub fn validate_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    let path = Path::new(p);
    if path.is_absolute() {
        return Err(format!("path {p:?} must be relative"));
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!("path {p:?} must not contain '..' or '.' elements"));
    }
    if p.starts_with("..") {
        return Err(format!("path {p:?} must not start with '..'"));
    }
    Ok(())
}

fn first_component(p: &str) -> &str {
    p.split('/').next().unwrap_or(p)
}

/// What `..data` currently holds, or None when the volume was never written.
fn current(dir: &Path) -> Option<(PathBuf, Payload)> {
    let target = std::fs::read_link(dir.join(DATA)).ok()?;
    let ts_dir = dir.join(&target);
    let mut out = Payload::new();
    let mut stack = vec![ts_dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let path = e.path();
            let meta = e.metadata().ok()?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(&ts_dir).ok()?.to_str()?.to_string();
            let data = std::fs::read(&path).ok()?;
            out.insert(
                rel,
                FileProjection {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
    }
    Some((target, out))
}

/// Write `payload` into `dir` atomically. Returns false when the content was already there.
/// With `group` (the pod's fsGroup) files and directories belong to that group. Blocking.
pub fn write(dir: &Path, payload: &Payload, group: Option<u32>) -> std::io::Result<bool> {
    for p in payload.keys() {
        validate_path(p).map_err(std::io::Error::other)?;
    }
    std::fs::create_dir_all(dir)?;
    let old = current(dir);
    if let Some((_, existing)) = &old
        && existing == payload
    {
        return Ok(false);
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y_%m_%d_%H_%M_%S")
        .to_string();
    let name = format!(
        "..{stamp}.{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let ts_dir = dir.join(&name);
    std::fs::create_dir(&ts_dir)?;
    std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
    if let Some(g) = group {
        std::os::unix::fs::chown(&ts_dir, None, Some(g))?;
    }
    for (rel, f) in payload {
        let path = ts_dir.join(rel);
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent)?;
            if let Some(g) = group {
                std::os::unix::fs::chown(parent, None, Some(g))?;
            }
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .open(&path)?;
        file.write_all(&f.data)?;
        // The umask may have removed bits from the requested mode.
        if let Some(g) = group {
            std::os::unix::fs::fchown(&file, None, Some(g))?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(f.mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp)?;
    std::fs::rename(&tmp, dir.join(DATA))?;
    let wanted: BTreeSet<&str> = payload.keys().map(|p| first_component(p)).collect();
    for top in &wanted {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(top), &link)?;
        }
    }
    // User-visible names that the new payload no longer has.
    for e in std::fs::read_dir(dir)?.flatten() {
        let file_name = e.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        if n.starts_with("..") || wanted.contains(n) {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_symlink()) {
            std::fs::remove_file(e.path())?;
        }
    }
    if let Some((old_target, _)) = old {
        let _ = std::fs::remove_dir_all(dir.join(old_target));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn paths() {
        assert!(validate_path("a/b.txt").is_ok());
        assert!(validate_path("/etc/x").is_err());
        assert!(validate_path("a/../../x").is_err());
        assert!(validate_path("..data").is_err());
        assert!(validate_path("").is_err());
    }

    #[test]
    fn writes_swaps_and_prunes() {
        let dir = std::env::temp_dir().join(format!("skiff-atomic-{}", uuid::Uuid::new_v4()));
        let p1 = Payload::from([
            ("a".to_string(), f("one", 0o644)),
            ("sub/b".to_string(), f("two", 0o400)),
        ]);
        assert!(write(&dir, &p1, None).expect("write"));
        assert_eq!(
            std::fs::read_to_string(dir.join("a")).ok().as_deref(),
            Some("one")
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/b")).ok().as_deref(),
            Some("two")
        );
        let link = std::fs::read_link(dir.join("a")).expect("a is a symlink");
        assert_eq!(link, Path::new("..data/a"));
        let mode = std::fs::metadata(dir.join("sub/b"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        let first = std::fs::read_link(dir.join(DATA)).expect("..data");
        assert!(
            !write(&dir, &p1, None).expect("rewrite"),
            "unchanged payload is not rewritten"
        );
        assert_eq!(std::fs::read_link(dir.join(DATA)).ok(), Some(first.clone()));

        let p2 = Payload::from([("a".to_string(), f("uno", 0o600))]);
        assert!(write(&dir, &p2, Some(1234)).expect("update"));
        assert_eq!(
            std::fs::read_to_string(dir.join("a")).ok().as_deref(),
            Some("uno")
        );
        assert!(
            std::fs::symlink_metadata(dir.join("sub")).is_err(),
            "pruned"
        );
        let meta = std::fs::metadata(dir.join("a")).expect("meta");
        assert_eq!(
            std::os::unix::fs::MetadataExt::gid(&meta),
            1234,
            "fsGroup owns the file"
        );
        assert!(!dir.join(&first).exists(), "old timestamped dir removed");
        let entries: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        assert_eq!(entries.len(), 3, "{entries:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rejects_escaping_paths() {
        let dir = std::env::temp_dir().join(format!("skiff-atomic-{}", uuid::Uuid::new_v4()));
        let p = Payload::from([("../x".to_string(), f("x", 0o644))]);
        assert!(write(&dir, &p, None).is_err());
        assert!(!dir.exists());
    }
}
