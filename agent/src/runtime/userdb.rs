//! User and group names of an image (`USER nginx`, `USER app:staff`) resolved against the image's own
//! `/etc/passwd` and `/etc/group`. The files are read straight from the snapshot's layer directories
//! (a read-only view of the image), so nothing is mounted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{RemoveSnapshotRequest, ViewSnapshotRequest};
use containerd_client::types::Mount;

use super::Runtime;
use super::container::SNAPSHOTTER;

const MAX_FILE: u64 = 1 << 20;

/// `name:x:uid:gid:...` → (uid, gid) of the first entry named `name`.
pub fn passwd_lookup(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// `name:x:gid:members` → gid.
pub fn group_lookup(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// Resolve an image `User` string to `uid:gid` (numbers pass through; names need the files).
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<String, String> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary_gid) = match u.parse::<u32>() {
        Ok(n) => (
            n,
            passwd
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 4 && f[2] == u)
                        .then(|| f[3].parse::<u32>().ok())
                        .flatten()
                })
                .unwrap_or(n),
        ),
        Err(_) => passwd_lookup(passwd, u).ok_or_else(|| {
            format!("unable to find user {u}: no matching entries in passwd file")
        })?,
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group_lookup(group, g).ok_or_else(|| {
                format!("unable to find group {g}: no matching entries in group file")
            })?,
        },
    };
    Ok(format!("{uid}:{gid}"))
}

/// The layer directories of a snapshot view, top first: overlay `upperdir`/`lowerdir=a:b`, or a bind source.
pub fn layer_dirs(mounts: &[Mount]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for m in mounts {
        if m.r#type == "bind" || m.options.iter().any(|o| o == "rbind" || o == "bind") {
            out.push(PathBuf::from(&m.source));
            continue;
        }
        for o in &m.options {
            if let Some(up) = o.strip_prefix("upperdir=") {
                out.insert(0, PathBuf::from(up));
            } else if let Some(lower) = o.strip_prefix("lowerdir=") {
                out.extend(lower.split(':').map(PathBuf::from));
            }
        }
    }
    out
}

async fn read_from_layers(dirs: &[PathBuf], rel: &str) -> Option<String> {
    for d in dirs {
        let p: PathBuf = Path::new(d).join(rel);
        if let Ok(meta) = tokio::fs::symlink_metadata(&p).await {
            if !meta.is_file() || meta.len() > MAX_FILE {
                return None; // a whiteout or something odd hides lower layers
            }
            return tokio::fs::read_to_string(&p).await.ok();
        }
    }
    None
}

impl Runtime {
    /// `/etc/passwd` and `/etc/group` of the image whose top snapshot is `chain_id` (empty when absent).
    pub async fn image_user_db(&self, chain_id: &str) -> Result<(String, String), String> {
        let lease = self
            .cd
            .lease(Duration::from_secs(60))
            .await
            .map_err(|e| e.to_string())?;
        let key = format!("skiff-userdb-{}", uuid::Uuid::new_v4().simple());
        let mut snaps = SnapshotsClient::new(self.cd.channel());
        let view = ViewSnapshotRequest {
            snapshotter: SNAPSHOTTER.to_string(),
            key: key.clone(),
            parent: chain_id.to_string(),
            labels: Default::default(),
        };
        let res = match snaps.view(self.cd.leased(view, &lease)).await {
            Ok(r) => {
                let dirs = layer_dirs(&r.into_inner().mounts);
                let passwd = read_from_layers(&dirs, "etc/passwd")
                    .await
                    .unwrap_or_default();
                let group = read_from_layers(&dirs, "etc/group")
                    .await
                    .unwrap_or_default();
                let _ = snaps
                    .remove(self.cd.req(RemoveSnapshotRequest {
                        snapshotter: SNAPSHOTTER.to_string(),
                        key,
                    }))
                    .await;
                Ok((passwd, group))
            }
            Err(s) => Err(format!("snapshot view of {chain_id}: {s}")),
        };
        let _ = self.cd.release(lease).await;
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnginx:x:101:101:nginx user:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nnginx:x:101:\nstaff:x:50:app\n";

    #[test]
    fn resolves_names() {
        assert_eq!(resolve("nginx", PASSWD, GROUP), Ok("101:101".into()));
        assert_eq!(resolve("app:staff", PASSWD, GROUP), Ok("1000:50".into()));
        assert_eq!(resolve("1000", PASSWD, GROUP), Ok("1000:1000".into()));
        assert_eq!(resolve("4242", PASSWD, GROUP), Ok("4242:4242".into()));
        assert_eq!(resolve("101:0", PASSWD, GROUP), Ok("101:0".into()));
        assert!(resolve("ghost", PASSWD, GROUP).is_err());
        assert!(resolve("app:ghosts", PASSWD, GROUP).is_err());
        assert!(resolve("nginx", "garbage\n::::\n", "").is_err());
    }

    #[test]
    fn layer_directories() {
        let overlay = Mount {
            r#type: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                "index=off".into(),
                "lowerdir=/s/3/fs:/s/2/fs:/s/1/fs".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            layer_dirs(&[overlay]),
            vec![PathBuf::from("/s/3/fs"), "/s/2/fs".into(), "/s/1/fs".into()]
        );
        let bind = Mount {
            r#type: "bind".into(),
            source: "/s/1/fs".into(),
            options: vec!["ro".into(), "rbind".into()],
            ..Default::default()
        };
        assert_eq!(layer_dirs(&[bind]), vec![PathBuf::from("/s/1/fs")]);
    }
}
