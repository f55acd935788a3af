//! skiff-cni's own plugin configuration (the object in the conflist's `plugins[]`).
//!
//! ```json
//! {"type":"skiff-cni","bridge":"skiff0","isGateway":true,"ipMasq":true,"clusterCIDR":"10.244.0.0/16",
//!  "mtu":1500,"hairpinMode":true,"nftTable":"skiff-cni",
//!  "ipam":{"subnet":"10.244.0.0/24","rangeStart":"10.244.0.10","rangeEnd":"10.244.0.200",
//!          "gateway":"10.244.0.1","dataDir":"/var/lib/cni/networks/skiff"}}
//! ```
//! `isGateway` puts the gateway address on the bridge, turns on forwarding and gives the container
//! a default route through it. `ipam.dataDir` is the directory holding the reservations (default
//! `/var/lib/cni/networks/<network name>`). Unknown keys are ignored.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::Value;

use crate::spec::env::{is_plain_name, validate_ifname};
use crate::spec::{Dns, Error, ErrorCode, ValidAttachment};

pub const DEFAULT_BRIDGE: &str = "skiff0";
pub const DEFAULT_NFT_TABLE: &str = "skiff-cni";
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
    #[serde(rename = "nftTable", default = "default_nft_table")]
    pub nft_table: String,
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    #[serde(default)]
    pub dns: Dns,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
    /// libcni also sends this misspelled alias (containernetworking/cni#1101).
    #[serde(rename = "cni.dev/attachments", default)]
    pub attachments_alias: Option<Vec<ValidAttachment>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IpamConf {
    #[serde(rename = "type", default)]
    pub ipam_type: Option<String>,
    pub subnet: Ipv4Net,
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<Ipv4Addr>,
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<Ipv4Addr>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(rename = "dataDir", default)]
    pub data_dir: Option<PathBuf>,
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

/// The validated address range IPAM hands out from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub subnet: Ipv4Net,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl NetConf {
    /// Decode stdin: malformed JSON is code 6, a wrong shape or invalid values code 7.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, Error> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            Error::new(
                ErrorCode::DECODING_FAILURE,
                "failed to decode network configuration",
            )
            .with_details(e.to_string())
        })?;
        let conf: NetConf = serde_json::from_value(value)
            .map_err(|e| Error::config(format!("invalid network configuration: {e}")))?;
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
        if let Some(ipam) = &self.ipam {
            if let Some(t) = &ipam.ipam_type
                && !matches!(t.as_str(), "skiff-cni" | "host-local" | "")
            {
                return Err(Error::new(
                    ErrorCode::UNSUPPORTED_FIELD,
                    format!("unsupported field ipam.type={t:?}: skiff-cni has built-in IPAM only"),
                ));
            }
            ipam.range()?;
        }
        Ok(())
    }

    pub fn gateway_mode(&self) -> bool {
        self.is_gateway || self.is_default_gateway
    }

    /// The IPAM section, required by the commands that allocate or release.
    pub fn ipam(&self) -> Result<&IpamConf, Error> {
        self.ipam
            .as_ref()
            .ok_or_else(|| Error::config("missing \"ipam\" section with a \"subnet\""))
    }

    /// The reservation directory.
    pub fn data_dir(&self) -> Result<PathBuf, Error> {
        let ipam = self.ipam()?;
        Ok(ipam
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT).join(&self.name)))
    }

    /// GC's valid attachments (either spelling); None when the runtime sent none.
    pub fn valid_attachments(&self) -> Option<&[ValidAttachment]> {
        self.valid_attachments
            .as_deref()
            .or(self.attachments_alias.as_deref())
    }
}

impl IpamConf {
    /// Check the range against the subnet and fill in the defaults: gateway = first address,
    /// range = the whole subnet without network and broadcast (the gateway is skipped on allocation).
    pub fn range(&self) -> Result<Range, Error> {
        let subnet = self.subnet.trunc();
        if subnet.prefix_len() > 30 {
            return Err(Error::config(format!(
                "ipam.subnet {} is too small",
                self.subnet
            )));
        }
        let first = u32::from(subnet.network()) + 1;
        let last = u32::from(subnet.broadcast()) - 1;
        let usable = |ip: Ipv4Addr, what: &str| -> Result<Ipv4Addr, Error> {
            if (first..=last).contains(&u32::from(ip)) {
                Ok(ip)
            } else {
                Err(Error::config(format!(
                    "ipam.{what} {ip} is not a usable address of {subnet}"
                )))
            }
        };
        let gateway = usable(self.gateway.unwrap_or(Ipv4Addr::from(first)), "gateway")?;
        let start = usable(
            self.range_start.unwrap_or(Ipv4Addr::from(first)),
            "rangeStart",
        )?;
        let end = usable(self.range_end.unwrap_or(Ipv4Addr::from(last)), "rangeEnd")?;
        if start > end {
            return Err(Error::config(format!(
                "ipam.rangeStart {start} is after rangeEnd {end}"
            )));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
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
        let r = c.ipam().unwrap().range().unwrap();
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
        assert_eq!(
            code(r#"{"name":"n","ipam":{"type":"dhcp","subnet":"10.0.0.0/24"}}"#),
            ErrorCode(2)
        );
        assert_eq!(code(r#"{"name":"../n"}"#), ErrorCode(7));
    }
}
