//! Container log files on disk: size-based rotation like the kubelet's (`<n>.log` → `<n>.log.<stamp>`,
//! at most N files) and the `/var/log/containers/<pod>_<ns>_<container>-<id>.log` symlinks.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

/// How container logs are kept: rotation size and count (`--container-log-max-size`,
/// `--container-log-max-files`) and where the `/var/log/containers` symlinks go (none: no links).
#[derive(Debug, Clone)]
pub struct LogPolicy {
    pub max_size: u64,
    pub max_files: u32,
    pub link_dir: Option<PathBuf>,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
            link_dir: None,
        }
    }
}

static POLICY: std::sync::OnceLock<LogPolicy> = std::sync::OnceLock::new();

/// Set the process-wide log policy once at start-up; later calls are ignored.
pub fn set_policy(p: LogPolicy) {
    let _ = POLICY.set(p);
}

pub fn policy() -> LogPolicy {
    POLICY.get().cloned().unwrap_or_default()
}

/// A Kubernetes quantity of bytes: `10Mi`, `512Ki`, `1G`, `2048`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number with an optional unit"))?;
    let mult: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(format!("invalid size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// The current log file of one container, rotated like the kubelet does: when the next write would pass
/// `max_size`, `0.log` is renamed `0.log.<YYYYMMDD-HHMMSS>` and a fresh `0.log` is started; at most
/// `max_files` files (the current one included) are kept. The name of the current file never changes,
/// so readers that follow it (and the `/var/log/containers` symlink) only need to reopen it.
pub struct RotatingFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl RotatingFile {
    pub fn new(path: PathBuf, max_size: u64, max_files: u32) -> Self {
        Self {
            path,
            file: None,
            size: 0,
            max_size,
            max_files: max_files.max(1),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.file.is_none() {
            self.open().await?;
        }
        if self.max_files > 1
            && self.max_size > 0
            && self.size > 0
            && self.size + data.len() as u64 > self.max_size
        {
            self.rotate().await?;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("log file not open"));
        };
        file.write_all(data).await?;
        self.size += data.len() as u64;
        Ok(())
    }

    pub async fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush().await,
            None => Ok(()),
        }
    }

    async fn open(&mut self) -> std::io::Result<()> {
        let f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .await?;
        self.size = f.metadata().await?.len();
        self.file = Some(f);
        Ok(())
    }

    async fn rotate(&mut self) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            f.flush().await?;
        }
        let name = file_name(&self.path);
        let now = jiff::Zoned::now().with_time_zone(jiff::tz::TimeZone::UTC);
        let mut target = self
            .path
            .with_file_name(format!("{name}.{}", now.strftime("%Y%m%d-%H%M%S")));
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            // Several rotations in one second: a finer stamp still sorts after the first.
            target = self
                .path
                .with_file_name(format!("{name}.{}", now.strftime("%Y%m%d-%H%M%S.%f")));
        }
        tokio::fs::rename(&self.path, &target).await?;
        self.open().await?;
        let dir = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let keep = self.max_files as usize - 1;
        let name2 = name.clone();
        let old = tokio::task::spawn_blocking(move || rotated_files(&dir, &name2))
            .await
            .map_err(std::io::Error::other)?;
        if old.len() > keep {
            for p in &old[..old.len() - keep] {
                if let Err(e) = tokio::fs::remove_file(p).await {
                    tracing::warn!(log = %p.display(), error = %e, "cannot remove rotated log");
                }
            }
        }
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `<name>.<stamp>` files next to the current log, oldest first.
pub fn rotated_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}.");
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// The log file shared by a container's stdout and stderr copiers.
pub type SharedLog = std::sync::Arc<tokio::sync::Mutex<RotatingFile>>;

/// A shared writer for `log` with the process-wide rotation policy.
pub fn shared_log(log: PathBuf) -> SharedLog {
    let p = policy();
    std::sync::Arc::new(tokio::sync::Mutex::new(RotatingFile::new(
        log,
        p.max_size,
        p.max_files,
    )))
}

/// `<link-dir>/<pod>_<ns>_<container>-<containerID>.log` (the kubelet's `/var/log/containers` name).
pub fn link_path(dir: &Path, pod: &str, ns: &str, container: &str, id: &str) -> PathBuf {
    dir.join(format!("{pod}_{ns}_{container}-{id}.log"))
}

/// Point the container's `/var/log/containers` symlink at its current log file (when links are on).
pub async fn link(pod: &str, ns: &str, container: &str, id: &str, log: &Path) {
    let Some(dir) = policy().link_dir else {
        return;
    };
    let link = link_path(&dir, pod, ns, container, id);
    let res = async {
        tokio::fs::create_dir_all(&dir).await?;
        match tokio::fs::remove_file(&link).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tokio::fs::symlink(log, &link).await
    };
    if let Err(e) = res.await {
        tracing::warn!(link = %link.display(), error = %e, "cannot create container log symlink");
    }
}

/// Remove the symlink of a container that is being removed.
pub async fn unlink(id: &str) {
    let Some(dir) = policy().link_dir else {
        return;
    };
    let suffix = format!("-{id}.log");
    let Ok(mut rd) = tokio::fs::read_dir(&dir).await else {
        return;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        if e.file_name().to_str().is_some_and(|n| n.ends_with(&suffix))
            && let Err(err) = tokio::fs::remove_file(e.path()).await
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(link = %e.path().display(), error = %err, "cannot remove container log symlink");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10Mi"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512Ki"), Ok(512 * 1024));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("1G"), Ok(1_000_000_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10Xi").is_err());
        assert!(parse_size("99999999999999Gi").is_err());
    }

    #[test]
    fn link_name() {
        assert_eq!(
            link_path(
                Path::new("/var/log/containers"),
                "web",
                "default",
                "nginx",
                "u1-nginx-0"
            ),
            PathBuf::from("/var/log/containers/web_default_nginx-u1-nginx-0.log")
        );
    }

    #[tokio::test]
    async fn rotation_keeps_max_files() {
        let dir = std::env::temp_dir().join(format!("skiff-rotate-{}", uuid::Uuid::new_v4()));
        let sub = dir.join("c");
        assert!(std::fs::create_dir_all(&sub).is_ok());
        // Another attempt's rotated files must not count towards this one.
        assert!(std::fs::write(sub.join("10.log.20200101-000000"), b"x").is_ok());
        let log = sub.join("0.log");
        let mut f = RotatingFile::new(log.clone(), 100, 3);
        let line = [b'a'; 39];
        for i in 0..40u8 {
            let mut rec = line.to_vec();
            rec[0] = b'0' + (i % 10);
            rec.push(b'\n');
            assert!(f.write(&rec).await.is_ok());
        }
        assert!(f.flush().await.is_ok());
        let rotated = rotated_files(&sub, "0.log");
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        let cur = std::fs::read(&log).unwrap_or_default();
        assert!(!cur.is_empty() && cur.len() <= 100);
        assert!(cur.ends_with(b"9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"));
        for r in &rotated {
            let len = std::fs::metadata(r).map(|m| m.len()).unwrap_or(0);
            assert!(len > 0 && len <= 100, "{} has {len} bytes", r.display());
        }
        assert!(sub.join("10.log.20200101-000000").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn one_file_means_no_rotation() {
        let dir = std::env::temp_dir().join(format!("skiff-rotate-{}", uuid::Uuid::new_v4()));
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let log = dir.join("0.log");
        let mut f = RotatingFile::new(log.clone(), 10, 1);
        for _ in 0..5 {
            assert!(f.write(b"0123456789\n").await.is_ok());
        }
        assert!(f.flush().await.is_ok());
        assert!(rotated_files(&dir, "0.log").is_empty());
        assert_eq!(std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0), 55);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
