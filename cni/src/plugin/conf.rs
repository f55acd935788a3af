//! skiff-cni's own plugin configuration (the object in the conflist's `plugins[]`): the reference
//! `bridge` plugin's keys plus an `ipam` section in host-local's format, so a conflist for
//! bridge + host-local works with `type` changed to `skiff-cni`.
//!
//! ```json
//! {"type":"skiff-cni","bridge":"skiff0","isGateway":true,"ipMasq":true,"clusterCIDR":"10.244.0.0/16",
//!  "mtu":1500,"hairpinMode":true,"promiscMode":false,"nftTable":"skiff-cni",
//!  "ipam":{"type":"host-local","subnet":"10.244.0.0/24","rangeStart":"10.244.0.10",
//!          "rangeEnd":"10.244.0.200","gateway":"10.244.0.1","routes":[{"dst":"0.0.0.0/0"}],
//!          "dataDir":"/var/lib/cni/networks"}}
//! ```
//! `isGateway` (or `isDefaultGateway`) puts the gateway address on the bridge, turns on forwarding
//! and gives the container a default route through it. `ipam.dataDir` has host-local's meaning:
//! reservations live in `<dataDir>/<network name>` (default `/var/lib/cni/networks/<name>`).
//! An `ipam.type` other than `host-local`/`skiff-cni` is delegated to that plugin. Unknown keys are
//! ignored.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::Value;

pub use super::ipam_conf::{IpamConf, Range, RangeConf, RouteConf};
use crate::spec::env::{is_plain_name, validate_ifname};
use crate::spec::{Dns, Env, Error, ErrorCode, ValidAttachment};

pub const DEFAULT_BRIDGE: &str = "skiff0";
pub const DEFAULT_NFT_TABLE: &str = "skiff-cni";
/// host-local's default `dataDir`; reservations live in `<dataDir>/<network name>`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/cni/networks";

#[derive(Debug, Clone, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default = "default_bridge")]
    pub bridge: String,
    #[serde(rename = "isGateway", default)]
    pub is_gateway: bool,
    /// Accepted for compatibility with the reference bridge; implies isGateway.
    #[serde(rename = "isDefaultGateway", default)]
    pub is_default_gateway: bool,
    #[serde(rename = "ipMasq", default)]
    pub ip_masq: bool,
    #[serde(rename = "clusterCIDR", default)]
    pub cluster_cidr: Option<Ipv4Net>,
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Hairpin on the host veth's bridge port (default on: pods reach themselves via services).
    #[serde(rename = "hairpinMode", default = "default_true")]
    pub hairpin_mode: bool,
    /// Put the bridge in promiscuous mode (the reference bridge's `promiscMode`).
    #[serde(rename = "promiscMode", default)]
    pub promisc_mode: bool,
    #[serde(rename = "nftTable", default = "default_nft_table")]
    pub nft_table: String,
    /// `nftables` or `iptables` (the reference bridge's key); default: nftables when `nft` is
    /// installed, else iptables.
    #[serde(rename = "ipMasqBackend", default)]
    pub ip_masq_backend: Option<String>,
    /// The raw `ipam` section; decoded into [`NetConf::ipam`] or [`NetConf::delegate`].
    #[serde(rename = "ipam", default)]
    ipam_raw: Option<Value>,
    /// Built-in (host-local compatible) IPAM: `ipam.type` absent, `host-local` or `skiff-cni`.
    #[serde(skip)]
    pub ipam: Option<IpamConf>,
    /// Any other `ipam.type`: the IPAM plugin that skiff-cni delegates to (spec §4).
    #[serde(skip)]
    pub delegate: Option<String>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
    /// `args.cni.ips` (CONVENTIONS.md).
    #[serde(default)]
    pub args: Option<Value>,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// libcni also sends this misspelled alias (containernetworking/cni#1101).
    #[serde(rename = "cni.dev/attachments", default)]
    pub attachments_alias: Option<Vec<ValidAttachment>>,
}

/// The capabilities skiff-cni understands (`portMappings`, `ips`); others are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    #[serde(rename = "portMappings", default)]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default)]
    pub ips: Vec<String>,
}

/// One `portMappings` entry (CONVENTIONS.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    #[serde(rename = "hostIP", default)]
    pub host_ip: Option<String>,
}

fn default_protocol() -> String {
    "tcp".to_string()
}

impl PortMapping {
    /// The protocol in nft's spelling; None when unsupported.
    pub fn proto(&self) -> Option<&'static str> {
        match self.protocol.to_ascii_lowercase().as_str() {
            "tcp" | "" => Some("tcp"),
            "udp" => Some("udp"),
            "sctp" => Some("sctp"),
            _ => None,
        }
    }

    /// The host address the mapping is limited to: `Some(None)` = every local address,
    /// `Some(Some(ip))` = that one, `None` = an IPv6 (or unreadable) host IP, which does not apply
    /// to an IPv4-only attachment.
    pub fn host_v4(&self) -> Option<Option<Ipv4Addr>> {
        match self.host_ip.as_deref().map(str::trim) {
            None | Some("") => Some(None),
            Some(s) => match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) if v4.is_unspecified() => Some(None),
                Ok(IpAddr::V4(v4)) => Some(Some(v4)),
                _ => None,
            },
        }
    }
}

fn default_bridge() -> String {
    DEFAULT_BRIDGE.to_string()
}

fn default_true() -> bool {
    true
}

fn default_nft_table() -> String {
    DEFAULT_NFT_TABLE.to_string()
}

fn unsupported(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::UNSUPPORTED_FIELD, msg)
}

impl NetConf {
    /// Decode stdin: malformed JSON is code 6, a wrong shape or invalid values code 7, IPv6 or
    /// several range sets code 2.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, Error> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            Error::new(
                ErrorCode::DECODING_FAILURE,
                "failed to decode network configuration",
            )
            .with_details(e.to_string())
        })?;
        let mut conf: NetConf = serde_json::from_value(value)
            .map_err(|e| Error::config(format!("invalid network configuration: {e}")))?;
        if let Some(raw) = conf.ipam_raw.take() {
            let ty = raw.get("type").and_then(Value::as_str).unwrap_or_default();
            match ty {
                "" | "host-local" | "skiff-cni" => {
                    let ipam: IpamConf = serde_json::from_value(raw)
                        .map_err(|e| Error::config(format!("invalid ipam section: {e}")))?;
                    conf.ipam = Some(ipam);
                }
                t if is_plain_name(t) => conf.delegate = Some(t.to_string()),
                t => return Err(Error::config(format!("invalid ipam.type {t:?}"))),
            }
        }
        conf.validate()?;
        Ok(conf)
    }

    fn validate(&self) -> Result<(), Error> {
        if !is_plain_name(&self.name) {
            return Err(Error::config(format!(
                "invalid network name {:?}",
                self.name
            )));
        }
        validate_ifname(&self.bridge).map_err(|e| Error::config(format!("bridge: {e}")))?;
        // nft identifiers must start with a letter.
        if !is_plain_name(&self.nft_table)
            || !self
                .nft_table
                .starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(Error::config(format!(
                "invalid nftTable {:?}",
                self.nft_table
            )));
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::config(format!("mtu {mtu} is out of range 68-65535")));
        }
        if let Some(b) = &self.ip_masq_backend
            && !matches!(b.as_str(), "nftables" | "iptables")
        {
            return Err(unsupported(format!(
                "unsupported field ipMasqBackend={b:?}: nftables or iptables"
            )));
        }
        if let Some(ipam) = &self.ipam {
            ipam.range_set()?;
            ipam.routes_v4()?;
        }
        for pm in &self.runtime_config.port_mappings {
            if pm.host_port == 0 || pm.container_port == 0 {
                return Err(Error::config(format!(
                    "portMappings: invalid port in {pm:?}"
                )));
            }
            if pm.proto().is_none() {
                return Err(unsupported(format!(
                    "unsupported field portMappings.protocol={:?}",
                    pm.protocol
                )));
            }
        }
        Ok(())
    }

    /// Whether firewall state goes through the iptables fallback.
    pub fn use_iptables(&self) -> bool {
        match self.ip_masq_backend.as_deref() {
            Some("iptables") => true,
            Some(_) => false,
            None => !super::firewall::nft_available(),
        }
    }

    pub fn gateway_mode(&self) -> bool {
        self.is_gateway || self.is_default_gateway
    }

    /// The built-in IPAM section, required by the commands that allocate or release.
    pub fn ipam(&self) -> Result<&IpamConf, Error> {
        self.ipam.as_ref().ok_or_else(|| {
            Error::config("missing \"ipam\" section with a \"subnet\" or \"ranges\"")
        })
    }

    /// The reservation directory: `<dataDir or /var/lib/cni/networks>/<network name>`, as host-local.
    pub fn data_dir(&self) -> Result<PathBuf, Error> {
        let ipam = self.ipam()?;
        Ok(ipam
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT))
            .join(&self.name))
    }

    /// GC's valid attachments (either spelling); None when the runtime sent none.
    pub fn valid_attachments(&self) -> Option<&[ValidAttachment]> {
        self.valid_attachments
            .as_deref()
            .or(self.attachments_alias.as_deref())
    }

    /// The address the runtime asks for: `runtimeConfig.ips` (the `ips` capability), `args.cni.ips`
    /// or `CNI_ARGS` `IP=`. At most one (one range set, one address).
    pub fn requested_ip(&self, env: &Env) -> Result<Option<Ipv4Addr>, Error> {
        let mut asked: Vec<String> = self.runtime_config.ips.clone();
        if let Some(ips) = self
            .args
            .as_ref()
            .and_then(|a| a.pointer("/cni/ips"))
            .and_then(Value::as_array)
        {
            asked.extend(ips.iter().filter_map(Value::as_str).map(str::to_string));
        }
        if let Some(ips) = env.arg("IP") {
            asked.extend(ips.split(',').map(|s| s.trim().to_string()));
        }
        asked.retain(|s| !s.is_empty());
        asked.dedup();
        let mut out = Vec::new();
        for s in &asked {
            let addr = s.split('/').next().unwrap_or_default();
            match addr.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => out.push(ip),
                Ok(IpAddr::V6(_)) => {
                    return Err(unsupported(format!(
                        "unsupported requested IP {s}: skiff-cni is IPv4 only"
                    )));
                }
                Err(_) => return Err(Error::config(format!("invalid requested IP {s:?}"))),
            }
        }
        out.dedup();
        match out.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(unsupported(format!(
                "{} IPs requested; one range set gives one IP",
                out.len()
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","ipam":{"subnet":"10.9.0.0/24"},"x":1}"#,
        )
        .unwrap();
        assert_eq!(c.bridge, "skiff0");
        let r = c.ipam().unwrap().range_set().unwrap()[0];
        assert_eq!(r.gateway, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(r.start, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(r.end, Ipv4Addr::new(10, 9, 0, 254));
        assert_eq!(
            c.data_dir().unwrap(),
            PathBuf::from("/var/lib/cni/networks/n")
        );
    }

    #[test]
    fn rejects_bad() {
        let code = |s: &str| NetConf::parse(s.as_bytes()).unwrap_err().code;
        assert_eq!(code("{"), ErrorCode::DECODING_FAILURE);
        assert_eq!(code(r#"{"name":"n","ipam":{"subnet":"x"}}"#), ErrorCode(7));
        assert_eq!(
            code(r#"{"name":"n","ipam":{"subnet":"10.0.0.0/31"}}"#),
            ErrorCode(7)
        );
        assert_eq!(
            code(r#"{"name":"n","ipam":{"subnet":"10.0.0.0/24","gateway":"10.0.1.1"}}"#),
            ErrorCode(7)
        );
        assert_eq!(
            code(
                r#"{"name":"n","ipam":{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.9","rangeEnd":"10.0.0.3"}}"#
            ),
            ErrorCode(7)
        );
        assert_eq!(code(r#"{"name":"n","bridge":"x/y"}"#), ErrorCode(7));
        assert_eq!(code(r#"{"name":"../n"}"#), ErrorCode(7));
        assert_eq!(
            code(r#"{"name":"n","ipam":{"subnet":"fd00::/64"}}"#),
            ErrorCode(2)
        );
        assert_eq!(
            code(
                r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}}"#
            ),
            ErrorCode(2)
        );
        assert_eq!(
            code(
                r#"{"name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"},{"subnet":"10.0.0.0/25"}]]}}"#
            ),
            ErrorCode(7),
            "overlapping ranges"
        );
        assert_eq!(
            code(
                r#"{"name":"n","ipam":{"subnet":"10.0.0.0/24","ranges":[[{"subnet":"10.0.0.0/24"}]]}}"#
            ),
            ErrorCode(7)
        );
        assert_eq!(
            code(
                r#"{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":0,"containerPort":80}]}}"#
            ),
            ErrorCode(7)
        );
        assert_eq!(
            code(
                r#"{"name":"n","runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]}}"#
            ),
            ErrorCode(2)
        );
        assert_eq!(code(r#"{"name":"n","ipam":{"type":"../x"}}"#), ErrorCode(7));
    }

    #[test]
    fn host_local_format() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"skiff-cni","promiscMode":true,
            "ipam":{"type":"host-local","dataDir":"/tmp/x",
              "ranges":[[{"subnet":"10.9.0.0/24","rangeStart":"10.9.0.10","rangeEnd":"10.9.0.20"},
                         {"subnet":"10.9.1.0/24","gateway":"10.9.1.254"}]],
              "routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.0.0/16","gw":"10.9.0.5"}]}}"#,
        )
        .unwrap();
        assert!(c.promisc_mode && c.delegate.is_none());
        let set = c.ipam().unwrap().range_set().unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].start, Ipv4Addr::new(10, 9, 0, 10));
        assert_eq!(set[0].gateway, Ipv4Addr::new(10, 9, 0, 1));
        assert_eq!(set[1].gateway, Ipv4Addr::new(10, 9, 1, 254));
        assert_eq!(set[1].size(), 253);
        let routes = c.ipam().unwrap().routes_v4().unwrap();
        assert_eq!(routes[0], ("0.0.0.0/0".parse().unwrap(), None));
        assert_eq!(routes[1].1, Some(Ipv4Addr::new(10, 9, 0, 5)));
        assert_eq!(c.data_dir().unwrap(), PathBuf::from("/tmp/x/n"));

        let d = NetConf::parse(br#"{"name":"n","ipam":{"type":"static","addresses":[]}}"#).unwrap();
        assert_eq!(d.delegate.as_deref(), Some("static"));
        assert!(d.ipam.is_none());
    }

    #[test]
    fn requested_ips() {
        let env = |args: &str| {
            Env::from_lookup(|k| match k {
                "CNI_COMMAND" => Some("DEL".into()),
                "CNI_CONTAINERID" => Some("c".into()),
                "CNI_IFNAME" => Some("eth0".into()),
                "CNI_ARGS" => Some(args.into()),
                _ => None,
            })
            .unwrap()
        };
        let c = NetConf::parse(br#"{"name":"n","runtimeConfig":{"ips":["10.0.0.5/24"]}}"#).unwrap();
        assert_eq!(
            c.requested_ip(&env("")).unwrap(),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(
            c.requested_ip(&env("IP=10.0.0.5")).unwrap(),
            Some(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(
            c.requested_ip(&env("IP=10.0.0.6")).unwrap_err().code,
            ErrorCode(2)
        );
        let a = NetConf::parse(br#"{"name":"n","args":{"cni":{"ips":["10.0.0.7"]}}}"#).unwrap();
        assert_eq!(
            a.requested_ip(&env("")).unwrap(),
            Some(Ipv4Addr::new(10, 0, 0, 7))
        );
        assert_eq!(
            a.requested_ip(&env("IP=bogus")).unwrap_err().code,
            ErrorCode(7)
        );
        assert_eq!(
            c.requested_ip(&env("IP=fd00::1")).unwrap_err().code,
            ErrorCode(2)
        );
    }
}
