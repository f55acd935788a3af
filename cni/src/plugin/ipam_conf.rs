//! The `ipam` section of skiff-cni's config in host-local's format, and the address ranges it
//! describes.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

use crate::spec::{Error, ErrorCode};

/// The `ipam` section in host-local's format: `subnet` (+ `rangeStart`, `rangeEnd`, `gateway`) or
/// `ranges` (one range set), plus `routes` and `dataDir`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamConf {
    #[serde(rename = "type", default)]
    pub ipam_type: Option<String>,
    #[serde(default)]
    pub subnet: Option<IpNet>,
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<IpAddr>,
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    #[serde(default)]
    pub ranges: Vec<Vec<RangeConf>>,
    #[serde(default)]
    pub routes: Vec<RouteConf>,
    /// As in host-local: the parent directory; reservations go to `<dataDir>/<network name>`.
    #[serde(rename = "dataDir", default)]
    pub data_dir: Option<PathBuf>,
}

/// One range of a host-local range set.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RangeConf {
    pub subnet: IpNet,
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<IpAddr>,
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<IpAddr>,
    #[serde(default)]
    pub gateway: Option<IpAddr>,
}

/// An `ipam.routes` entry; `gw` defaults to the range's gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct RouteConf {
    pub dst: IpNet,
    #[serde(default)]
    pub gw: Option<IpAddr>,
}

/// The validated address range IPAM hands out from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub subnet: Ipv4Net,
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl Range {
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.start..=self.end).contains(&ip)
    }

    /// Addresses handed out from this range (the gateway excluded).
    pub fn size(&self) -> u32 {
        u32::from(self.end) - u32::from(self.start) + 1 - u32::from(self.contains(self.gateway))
    }
}

pub(crate) fn unsupported(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::UNSUPPORTED_FIELD, msg)
}

fn v4(ip: Option<IpAddr>, what: &str) -> Result<Option<Ipv4Addr>, Error> {
    match ip {
        None => Ok(None),
        Some(IpAddr::V4(v)) => Ok(Some(v)),
        Some(IpAddr::V6(v)) => Err(unsupported(format!(
            "unsupported field {what}={v}: skiff-cni is IPv4 only"
        ))),
    }
}

impl IpamConf {
    /// The range set: `ranges` (exactly one set) or the top-level `subnet`. Defaults as in
    /// host-local: gateway = first address, range = the subnet without network, gateway and broadcast.
    pub fn range_set(&self) -> Result<Vec<Range>, Error> {
        let confs: Vec<RangeConf> = match (&self.subnet, self.ranges.as_slice()) {
            (Some(_), [_, ..]) => {
                return Err(Error::config(
                    "ipam: give either \"subnet\" or \"ranges\", not both",
                ));
            }
            (Some(subnet), []) => vec![RangeConf {
                subnet: *subnet,
                range_start: self.range_start,
                range_end: self.range_end,
                gateway: self.gateway,
            }],
            (None, []) => return Err(Error::config("ipam: missing \"subnet\" or \"ranges\"")),
            (None, [set]) if set.is_empty() => {
                return Err(Error::config("ipam.ranges[0] is empty"));
            }
            (None, [set]) => set.clone(),
            (None, sets) => {
                return Err(unsupported(format!(
                    "unsupported field ipam.ranges with {} range sets: skiff-cni gives one IPv4 address per attachment",
                    sets.len()
                )));
            }
        };
        let mut out: Vec<Range> = Vec::new();
        for c in &confs {
            let r = c.range()?;
            if let Some(o) = out.iter().find(|o| o.start <= r.end && r.start <= o.end) {
                return Err(Error::config(format!(
                    "ipam ranges {}-{} and {}-{} overlap",
                    o.start, o.end, r.start, r.end
                )));
            }
            out.push(r);
        }
        Ok(out)
    }

    /// `routes` as IPv4 (dst, gw).
    pub fn routes_v4(&self) -> Result<Vec<(Ipv4Net, Option<Ipv4Addr>)>, Error> {
        self.routes
            .iter()
            .map(|r| match r.dst {
                IpNet::V4(d) => Ok((d.trunc(), v4(r.gw, "ipam.routes.gw")?)),
                IpNet::V6(d) => Err(unsupported(format!(
                    "unsupported field ipam.routes.dst={d}: skiff-cni is IPv4 only"
                ))),
            })
            .collect()
    }
}

impl RangeConf {
    fn range(&self) -> Result<Range, Error> {
        let subnet = match self.subnet {
            IpNet::V4(s) => s.trunc(),
            IpNet::V6(s) => {
                return Err(unsupported(format!(
                    "unsupported field ipam subnet={s}: skiff-cni is IPv4 only"
                )));
            }
        };
        if subnet.prefix_len() > 30 {
            return Err(Error::config(format!(
                "ipam subnet {} is too small",
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
                    "ipam {what} {ip} is not a usable address of {subnet}"
                )))
            }
        };
        let gateway = usable(
            v4(self.gateway, "gateway")?.unwrap_or(Ipv4Addr::from(first)),
            "gateway",
        )?;
        let start = usable(
            v4(self.range_start, "rangeStart")?.unwrap_or(Ipv4Addr::from(first)),
            "rangeStart",
        )?;
        let end = usable(
            v4(self.range_end, "rangeEnd")?.unwrap_or(Ipv4Addr::from(last)),
            "rangeEnd",
        )?;
        if start > end {
            return Err(Error::config(format!(
                "ipam rangeStart {start} is after rangeEnd {end}"
            )));
        }
        let r = Range {
            subnet,
            start,
            end,
            gateway,
        };
        if r.size() == 0 {
            return Err(Error::config(format!(
                "ipam range {start}-{end} holds only the gateway"
            )));
        }
        Ok(r)
    }
}
