//! The result cache, in libcni's `cniCacheV1` layout so that other tools (and libcni itself) can
//! read it: `<cache_dir>/<network>-<containerID>-<ifname>` holding `{kind, containerId, config
//! (base64 of the conflist), ifName, networkName, netns, cniArgs, result}`.

use std::io;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Attachment, CniError};

const KIND: &str = "cniCacheV1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The conflist bytes, base64 (Go's `[]byte` JSON encoding).
    #[serde(default)]
    pub config: String,
    #[serde(rename = "ifName")]
    pub if_name: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<[String; 2]>,
    /// libcni's `capabilityArgs`: what ADD offered as runtimeConfig (DEL and GC reuse it).
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
}

impl Entry {
    pub fn new(network: &str, config: &[u8], att: &Attachment, result: Value) -> Entry {
        Entry {
            kind: KIND.to_string(),
            container_id: att.container_id.clone(),
            config: STANDARD.encode(config),
            if_name: att.ifname.clone(),
            network_name: network.to_string(),
            netns: att.netns.to_string_lossy().into_owned(),
            cni_args: super::exec::effective_args(&att.args)
                .into_iter()
                .map(|(k, v)| [k, v])
                .collect(),
            capability_args: att.capability_args(),
            result,
        }
    }

    /// A stand-in for an unreadable cache file: DEL then falls back to the current config.
    fn unreadable(container_id: &str, ifname: &str) -> Entry {
        Entry {
            kind: KIND.to_string(),
            container_id: container_id.to_string(),
            config: String::new(),
            if_name: ifname.to_string(),
            network_name: String::new(),
            netns: String::new(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: Value::Null,
        }
    }

    pub fn config_bytes(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.config).ok().filter(|b| !b.is_empty())
    }

    /// The attachment as ADD saw it (for a synthesized DEL).
    pub fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            netns: PathBuf::from(&self.netns),
            ifname: self.if_name.clone(),
            args: self
                .cni_args
                .iter()
                .map(|[k, v]| (k.clone(), v.clone()))
                .collect(),
            port_mappings: self
                .capability_args
                .get("portMappings")
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
        }
    }
}

pub fn path(dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    dir.join(format!("{network}-{container_id}-{ifname}"))
}

/// Write atomically (temp file + rename), readable by root only.
pub async fn write(dir: &Path, entry: &Entry) -> Result<(), CniError> {
    let target = path(
        dir,
        &entry.network_name,
        &entry.container_id,
        &entry.if_name,
    );
    let bytes = serde_json::to_vec(entry)
        .map_err(|e| CniError::io("failed to encode cache entry", io::Error::other(e)))?;
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let tmp = target.with_extension(format!("tmp{}", std::process::id()));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &target)
    })
    .await
    .map_err(|e| CniError::io("cache writer panicked", io::Error::other(e)))?
    .map_err(|e| CniError::io("failed to write the CNI result cache", e))
}

pub async fn remove(path: &Path) -> Result<(), CniError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::io(
            format!("failed to remove {}", path.display()),
            e,
        )),
    }
}

async fn read(path: &Path) -> Option<Entry> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice::<Entry>(&bytes)
        .ok()
        .filter(|e| e.kind == KIND)
}

async fn names(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return out;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        if let Some(name) = e.file_name().to_str()
            && !name.contains(".tmp")
        {
            out.push((e.path(), name.to_string()));
        }
    }
    out.sort();
    out
}

/// Cache entries of one attachment, whatever network they were created for. A file that is named
/// for the attachment but unreadable is returned as a stand-in so that DEL still removes it.
pub async fn find(dir: &Path, container_id: &str, ifname: &str) -> Vec<(PathBuf, Entry)> {
    let suffix = format!("-{container_id}-{ifname}");
    let mut out = Vec::new();
    for (path, name) in names(dir).await {
        if !name.ends_with(&suffix) {
            continue;
        }
        match read(&path).await {
            Some(e) if e.container_id == container_id && e.if_name == ifname => out.push((path, e)),
            Some(_) => {}
            None => out.push((path, Entry::unreadable(container_id, ifname))),
        }
    }
    out
}

/// Every readable cache entry.
pub async fn all(dir: &Path) -> Vec<(PathBuf, Entry)> {
    let mut out = Vec::new();
    for (path, _) in names(dir).await {
        if let Some(e) = read(&path).await {
            out.push((path, e));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn att(id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            netns: "/run/netns/x".into(),
            ifname: ifname.into(),
            args: vec![("K8S_POD_NAME".into(), "p".into())],
            port_mappings: Vec::new(),
        }
    }

    #[tokio::test]
    async fn roundtrip_and_lookup() {
        let dir = std::env::temp_dir().join(format!("skiff-cache-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let result =
            serde_json::json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/24"}]});
        let e = Entry::new(
            "net-a",
            b"{\"name\":\"net-a\"}",
            &att("abc", "eth0"),
            result.clone(),
        );
        write(&dir, &e).await.unwrap();
        // A container id that is a suffix of another must not match it.
        let other = Entry::new("net-a", b"{}", &att("xabc", "eth0"), result.clone());
        write(&dir, &other).await.unwrap();
        std::fs::write(dir.join("net-b-abc-eth0"), b"garbage").unwrap();

        let found = find(&dir, "abc", "eth0").await;
        assert_eq!(found.len(), 2, "the real entry and the unreadable one");
        let real = found
            .iter()
            .find(|(p, _)| p.ends_with("net-a-abc-eth0"))
            .unwrap();
        assert_eq!(real.1.result, result);
        assert_eq!(real.1.config_bytes().unwrap(), b"{\"name\":\"net-a\"}");
        assert_eq!(
            real.1.cni_args[0],
            ["IgnoreUnknown".to_string(), "1".to_string()]
        );
        let stand_in = found
            .iter()
            .find(|(p, _)| p.ends_with("net-b-abc-eth0"))
            .unwrap();
        assert!(stand_in.1.config_bytes().is_none());
        assert_eq!(all(&dir).await.len(), 2);

        let raw: Value =
            serde_json::from_slice(&std::fs::read(dir.join("net-a-abc-eth0")).unwrap()).unwrap();
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["containerId"], "abc");
        assert_eq!(raw["ifName"], "eth0");
        assert_eq!(raw["networkName"], "net-a");
        for (p, _) in found {
            remove(&p).await.unwrap();
            remove(&p).await.unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
