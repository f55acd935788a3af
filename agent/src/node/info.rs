//! Facts about this machine for the Node object: capacity, addresses, nodeInfo.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use k8s_openapi::api::core::v1::{NodeAddress, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub const KUBELET_VERSION: &str = "v1.32.0-skiff";
pub const MAX_PODS: u32 = 110;

#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub node_ip: IpAddr,
    pub hostname: String,
    pub capacity: BTreeMap<String, Quantity>,
    pub info: NodeSystemInfo,
}

impl NodeFacts {
    pub fn addresses(&self, node_name: &str) -> Vec<NodeAddress> {
        let _ = node_name;
        vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: self.node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: self.hostname.clone(),
            },
        ]
    }
}

/// `MemTotal:  16318480 kB` → `16318480Ki`.
pub fn mem_total(meminfo: &str) -> Option<String> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{kb}Ki"))
}

/// `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"` → the value.
pub fn os_image(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(
        line["PRETTY_NAME=".len()..]
            .trim()
            .trim_matches('"')
            .to_string(),
    )
}

fn first_ipv4() -> Option<IpAddr> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut found: Option<Ipv4Addr> = None;
    for a in addrs {
        let Some(ip) = a
            .address
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map(|s| s.ip())
        else {
            continue;
        };
        if ip.is_loopback() || ip.is_link_local() {
            continue;
        }
        if a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
            found = Some(ip);
            break;
        }
    }
    found.map(IpAddr::V4)
}

async fn read_trim(path: &str) -> String {
    tokio::fs::read_to_string(path)
        .await
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub async fn gather(
    node_ip: Option<IpAddr>,
    root_dir: &Path,
    runtime_version: &str,
) -> anyhow::Result<NodeFacts> {
    let root = root_dir.to_path_buf();
    let (ip, hostname, storage) = tokio::task::spawn_blocking(move || {
        let ip = node_ip.or_else(first_ipv4);
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default();
        let probe = if root.exists() {
            root
        } else {
            Path::new("/").to_path_buf()
        };
        let storage = nix::sys::statvfs::statvfs(&probe)
            .ok()
            .map(|s| s.blocks() * s.fragment_size());
        (ip, hostname, storage)
    })
    .await?;
    let ip =
        ip.ok_or_else(|| anyhow::anyhow!("no non-loopback IPv4 address found; pass --node-ip"))?;
    let meminfo = tokio::fs::read_to_string("/proc/meminfo")
        .await
        .unwrap_or_default();
    let memory = mem_total(&meminfo)
        .ok_or_else(|| anyhow::anyhow!("cannot read MemTotal from /proc/meminfo"))?;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut capacity = BTreeMap::from([
        ("cpu".to_string(), Quantity(cpus.to_string())),
        ("memory".to_string(), Quantity(memory)),
        ("pods".to_string(), Quantity(MAX_PODS.to_string())),
    ]);
    if let Some(bytes) = storage {
        capacity.insert(
            "ephemeral-storage".into(),
            Quantity(format!("{}Ki", bytes / 1024)),
        );
    }
    let machine_id = read_trim("/etc/machine-id").await;
    let product_uuid = read_trim("/sys/class/dmi/id/product_uuid").await;
    let info = NodeSystemInfo {
        architecture: "amd64".into(),
        boot_id: read_trim("/proc/sys/kernel/random/boot_id").await,
        container_runtime_version: format!("containerd://{runtime_version}"),
        kernel_version: read_trim("/proc/sys/kernel/osrelease").await,
        kube_proxy_version: String::new(),
        kubelet_version: KUBELET_VERSION.into(),
        machine_id: machine_id.clone(),
        operating_system: "linux".into(),
        os_image: os_image(
            &tokio::fs::read_to_string("/etc/os-release")
                .await
                .unwrap_or_default(),
        )
        .unwrap_or_else(|| "Linux".into()),
        system_uuid: if product_uuid.is_empty() {
            machine_id
        } else {
            product_uuid
        },
        ..Default::default()
    };
    Ok(NodeFacts {
        node_ip: ip,
        hostname,
        capacity,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(
            mem_total("MemTotal:       24684180 kB\nMemFree: 1 kB\n").as_deref(),
            Some("24684180Ki")
        );
        assert_eq!(mem_total("garbage"), None);
        assert_eq!(
            os_image("ID=debian\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n").as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
    }
}
