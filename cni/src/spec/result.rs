//! The success result (§5) in its 1.1 shape, readable from every supported version and writable in
//! each version's shape (0.3.x/0.4.0 add `ips[].version`; 1.1 adds the interface and route attributes).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::{Error, ErrorCode};
use super::version::Version;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// 1.1
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Netns path for container interfaces; empty for host interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    /// 1.1
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    /// 1.1
    #[serde(rename = "pciID", default, skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length (`10.244.0.5/24`).
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// "4" or "6" in 0.3.x/0.4.0 results only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// 1.1 route attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

impl CniResult {
    /// Parse a result of any supported version (0.3.0 … 1.1.0) from a plugin's stdout.
    pub fn parse(bytes: &[u8]) -> Result<CniResult, Error> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            Error::new(ErrorCode::DECODING_FAILURE, "failed to decode CNI result")
                .with_details(e.to_string())
        })?;
        CniResult::from_value(value)
    }

    /// Parse from an already decoded JSON value (e.g. a config's `prevResult`).
    pub fn from_value(value: serde_json::Value) -> Result<CniResult, Error> {
        let version = value
            .get("cniVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let v = Version::parse_supported(&version)?;
        let mut result: CniResult = serde_json::from_value(value).map_err(|e| {
            Error::new(
                ErrorCode::DECODING_FAILURE,
                format!("failed to decode {v} CNI result"),
            )
            .with_details(e.to_string())
        })?;
        result.cni_version = version;
        for ip in &mut result.ips {
            ip.version = None;
            if let Some(i) = ip.interface
                && i >= result.interfaces.len()
            {
                return Err(Error::new(
                    ErrorCode::DECODING_FAILURE,
                    format!("result ips[].interface {i} is out of range"),
                ));
            }
        }
        Ok(result)
    }

    /// The result in the shape of spec version `v` (fields newer than `v` dropped).
    pub fn to_version(&self, v: Version) -> Result<CniResult, Error> {
        if !v.is_supported() {
            return Err(Error::new(
                ErrorCode::INCOMPATIBLE_VERSION,
                format!("cannot convert result to unsupported version {v}"),
            ));
        }
        let mut out = self.clone();
        out.cni_version = v.to_string();
        if v < Version::V1_1 {
            for i in &mut out.interfaces {
                i.mtu = None;
                i.socket_path.clear();
                i.pci_id.clear();
            }
            for r in &mut out.routes {
                *r = Route::new(r.dst, r.gw);
            }
        }
        for ip in &mut out.ips {
            ip.version = (v < Version::V1).then(|| {
                if ip.address.addr().is_ipv4() {
                    "4"
                } else {
                    "6"
                }
                .to_string()
            });
        }
        Ok(out)
    }

    /// The result as JSON in the shape of version `v`.
    pub fn to_json(&self, v: Version) -> Result<serde_json::Value, Error> {
        let converted = self.to_version(v)?;
        serde_json::to_value(converted)
            .map_err(|e| Error::new(ErrorCode::INTERNAL, format!("cannot encode result: {e}")))
    }

    /// The first address assigned to an interface inside the sandbox (or the first address at all).
    pub fn first_ip(&self) -> Option<IpAddr> {
        self.ips
            .iter()
            .find(|ip| {
                ip.interface
                    .and_then(|i| self.interfaces.get(i))
                    .is_some_and(|i| !i.sandbox.is_empty())
            })
            .or(self.ips.first())
            .map(|ip| ip.address.addr())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const V040: &str = r#"{"cniVersion":"0.4.0","interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:ff"},
        {"name":"eth0","mac":"aa:bb:cc:dd:ee:00","sandbox":"/run/netns/x"}],
        "ips":[{"version":"4","address":"10.1.0.5/24","gateway":"10.1.0.1","interface":1}],
        "routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}],"dns":{}}"#;

    #[test]
    fn roundtrips_versions() {
        let r = CniResult::parse(V040.as_bytes()).unwrap();
        assert_eq!(r.first_ip(), Some("10.1.0.5".parse().unwrap()));
        let v1 = r.to_json("1.0.0".parse().unwrap()).unwrap();
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1.get("dns").is_none());
        let v031 = r.to_json("0.3.1".parse().unwrap()).unwrap();
        assert_eq!(v031["ips"][0]["version"], "4");
        assert_eq!(v031["cniVersion"], "0.3.1");
    }

    #[test]
    fn drops_11_fields_for_older() {
        let mut r = CniResult::parse(V040.as_bytes()).unwrap();
        r.interfaces[0].mtu = Some(1400);
        r.routes[0].priority = Some(5);
        let v11 = r.to_json(Version::V1_1).unwrap();
        assert_eq!(v11["interfaces"][0]["mtu"], 1400);
        assert_eq!(v11["routes"][0]["priority"], 5);
        let v10 = r.to_json(Version::V1).unwrap();
        assert!(v10["interfaces"][0].get("mtu").is_none());
        assert!(v10["routes"][0].get("priority").is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            CniResult::parse(b"{").unwrap_err().code,
            ErrorCode::DECODING_FAILURE
        );
        assert_eq!(
            CniResult::parse(br#"{"cniVersion":"0.2.0","ip4":{}}"#)
                .unwrap_err()
                .code,
            ErrorCode::INCOMPATIBLE_VERSION
        );
        let bad_idx = r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24","interface":3}]}"#;
        assert!(CniResult::parse(bad_idx.as_bytes()).is_err());
        let bad_ip = r#"{"cniVersion":"1.0.0","ips":[{"address":"nope"}]}"#;
        assert!(CniResult::parse(bad_ip.as_bytes()).is_err());
    }
}
