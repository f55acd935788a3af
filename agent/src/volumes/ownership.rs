//! fsGroup: volume ownership as the kubelet's `SetVolumeOwnership` does it — every file and directory
//! (symlinks left alone) gets the pod's fsGroup as its group, group read (+ write for writable volumes),
//! and directories group execute plus the setgid bit, so files created later inherit the group.
//! `fsGroupChangePolicy: OnRootMismatch` skips the walk when the volume's root already looks right.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangePolicy {
    Always,
    OnRootMismatch,
}

impl ChangePolicy {
    /// `spec.securityContext.fsGroupChangePolicy`; unset (or unknown, which validation rejects) is `Always`.
    pub fn from_spec(v: Option<&str>) -> Self {
        match v {
            Some("OnRootMismatch") => ChangePolicy::OnRootMismatch,
            _ => ChangePolicy::Always,
        }
    }
}

fn mask(readonly: bool) -> u32 {
    if readonly { RO_MASK } else { RW_MASK }
}

/// Whether the volume's root already has the group, the group permissions and the setgid bit.
fn root_matches(dir: &Path, gid: u32, readonly: bool) -> bool {
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = meta.mode();
    meta.gid() == gid && mode & mask(readonly) == mask(readonly) && mode & SETGID != 0
}

fn change(path: &Path, meta: &std::fs::Metadata, gid: u32, readonly: bool) -> std::io::Result<()> {
    if meta.gid() != gid {
        std::os::unix::fs::lchown(path, None, Some(gid))?;
    }
    let mut want = meta.mode() & 0o7777 | mask(readonly);
    if meta.is_dir() {
        want |= SETGID | EXEC_MASK;
    }
    if want != meta.mode() & 0o7777 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(want))?;
    }
    Ok(())
}

fn walk(path: &Path, gid: u32, readonly: bool) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    change(path, &meta, gid, readonly)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            walk(&entry?.path(), gid, readonly)?;
        }
    }
    Ok(())
}

/// Give the volume at `dir` to group `gid` (blocking). Returns whether anything was walked.
pub fn set(dir: &Path, gid: u32, readonly: bool, policy: ChangePolicy) -> std::io::Result<bool> {
    if policy == ChangePolicy::OnRootMismatch && root_matches(dir, gid, readonly) {
        return Ok(false);
    }
    walk(dir, gid, readonly)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_and_skips() {
        let dir = std::env::temp_dir().join(format!("skiff-own-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/f"), "x").expect("write");
        std::fs::set_permissions(dir.join("sub/f"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", dir.join("link")).expect("symlink");
        let gid = 4321;
        // As root (the agent) the chown works; as another user only the group-less path is tested.
        if nix::unistd::geteuid().is_root() {
            assert_eq!(
                set(&dir, gid, false, ChangePolicy::OnRootMismatch).ok(),
                Some(true)
            );
            let f = std::fs::metadata(dir.join("sub/f")).expect("meta");
            assert_eq!(f.gid(), gid);
            assert_eq!(f.mode() & 0o7777, 0o660);
            let d = std::fs::metadata(dir.join("sub")).expect("meta");
            assert_eq!(d.mode() & 0o2070, 0o2070);
            assert_ne!(
                std::fs::symlink_metadata("/etc/passwd")
                    .expect("meta")
                    .gid(),
                gid,
                "symlink targets are left alone"
            );
            assert_eq!(
                set(&dir, gid, false, ChangePolicy::OnRootMismatch).ok(),
                Some(false)
            );
            assert_eq!(set(&dir, gid, false, ChangePolicy::Always).ok(), Some(true));
        }
        assert_eq!(ChangePolicy::from_spec(None), ChangePolicy::Always);
        assert_eq!(
            ChangePolicy::from_spec(Some("OnRootMismatch")),
            ChangePolicy::OnRootMismatch
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
