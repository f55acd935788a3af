//! Finding and writing network config lists in the conf dir.

use std::io;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use skiff_cni::spec::NetworkConfigList;

use super::CniError;

/// The file the agent writes when the conf dir has no conflist (docs/contracts.md).
pub const DEFAULT_CONFLIST: &str = "10-skiff.conflist";

/// The lexically first `*.conflist` in `dir` and its bytes (libcni's choice).
pub fn first(dir: &Path) -> Result<(PathBuf, Vec<u8>), CniError> {
    let path = list(dir)?
        .into_iter()
        .next()
        .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
    let raw = std::fs::read(&path)
        .map_err(|e| CniError::io(format!("failed to read {}", path.display()), e))?;
    Ok((path, raw))
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CniError::io(format!("failed to list {}", dir.display()), e)),
    };
    let mut files: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "conflist") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

pub fn parse(path: &Path, raw: &[u8]) -> Result<NetworkConfigList, CniError> {
    NetworkConfigList::parse(raw).map_err(|source| CniError::Config {
        path: path.to_path_buf(),
        source,
    })
}

/// The default skiff conflist for a node's pod CIDR.
pub fn default_conflist(pod_cidr: &str, cluster_cidr: &str) -> Result<String, CniError> {
    let pod: IpNet = pod_cidr.parse().map_err(|_| CniError::Cidr {
        what: "pod CIDR",
        value: pod_cidr.to_string(),
    })?;
    let cluster: IpNet = cluster_cidr.parse().map_err(|_| CniError::Cidr {
        what: "cluster CIDR",
        value: cluster_cidr.to_string(),
    })?;
    if !matches!((pod, cluster), (IpNet::V4(_), IpNet::V4(_))) {
        return Err(CniError::Cidr {
            what: "pod CIDR (skiff-cni is IPv4 only)",
            value: pod_cidr.to_string(),
        });
    }
    Ok(format!(
        r#"{{"cniVersion":"1.1.0","name":"skiff","plugins":[{{"type":"skiff-cni","bridge":"skiff0","isGateway":true,"ipMasq":true,"clusterCIDR":"{}","capabilities":{{"portMappings":true}},"ipam":{{"subnet":"{}"}}}}]}}"#,
        cluster.trunc(),
        pod.trunc()
    ) + "\n")
}

/// Write [`DEFAULT_CONFLIST`] unless some `*.conflist` is already there.
pub fn ensure_default(dir: &Path, pod_cidr: &str, cluster_cidr: &str) -> Result<(), CniError> {
    let body = default_conflist(pod_cidr, cluster_cidr)?;
    if !list(dir)?.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| CniError::io(format!("failed to create {}", dir.display()), e))?;
    let target = dir.join(DEFAULT_CONFLIST);
    // Not *.conflist while being written, so a concurrent reader never sees half a file.
    let tmp = dir.join(format!(".{DEFAULT_CONFLIST}.tmp"));
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, &target))
        .map_err(|e| CniError::io(format!("failed to write {}", target.display()), e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_contract() {
        let s = default_conflist("10.244.0.0/24", "10.244.0.0/16").unwrap();
        assert_eq!(
            s.trim(),
            r#"{"cniVersion":"1.1.0","name":"skiff","plugins":[{"type":"skiff-cni","bridge":"skiff0","isGateway":true,"ipMasq":true,"clusterCIDR":"10.244.0.0/16","capabilities":{"portMappings":true},"ipam":{"subnet":"10.244.0.0/24"}}]}"#
        );
        assert!(NetworkConfigList::parse(s.as_bytes()).is_ok());
        assert!(default_conflist("nope", "10.244.0.0/16").is_err());
        assert!(default_conflist("fd00::/64", "10.244.0.0/16").is_err());
    }

    #[test]
    fn keeps_existing_conflist() {
        let dir = std::env::temp_dir().join(format!("skiff-conflist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("05-other.conflist"), b"{}").unwrap();
        ensure_default(&dir, "10.244.1.0/24", "10.244.0.0/16").unwrap();
        assert!(!dir.join(DEFAULT_CONFLIST).exists());
        std::fs::remove_file(dir.join("05-other.conflist")).unwrap();
        ensure_default(&dir, "10.244.1.0/24", "10.244.0.0/16").unwrap();
        assert!(dir.join(DEFAULT_CONFLIST).exists());
        assert_eq!(first(&dir).unwrap().0, dir.join(DEFAULT_CONFLIST));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
