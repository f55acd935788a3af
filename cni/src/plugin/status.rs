//! STATUS (1.1): ready for ADD when the bridge (if present) is a usable bridge, the IPAM directory
//! takes new files and the range still has a free address.

use super::conf::NetConf;
use super::netlink::Netlink;
use super::{ipam, link};
use crate::spec::{Error, ErrorCode};

fn unavailable(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::NOT_AVAILABLE, msg)
}

pub fn status(conf: &NetConf) -> Result<(), Error> {
    let range = conf.ipam().map_err(|e| unavailable(e.msg))?.range()?;
    let mut nl = Netlink::open().map_err(link::nl_err("failed to open netlink"))?;
    if let Some(l) = nl
        .link_by_name(&conf.bridge)
        .map_err(link::nl_err("failed to look up the bridge"))?
        && l.kind.as_deref() != Some("bridge")
    {
        return Err(unavailable(format!(
            "{} exists and is not a bridge",
            conf.bridge
        )));
    }
    let dir = conf.data_dir()?;
    ipam::check_writable(&dir).map_err(|e| {
        unavailable(format!("IPAM dir {} is not writable", dir.display()))
            .with_details(e.to_string())
    })?;
    let held = ipam::Store::open(&dir)?
        .reservations()?
        .iter()
        .filter(|r| (range.start..=range.end).contains(&r.ip) && r.ip != range.gateway)
        .count();
    let size = (u32::from(range.end) - u32::from(range.start) + 1) as usize
        - usize::from((range.start..=range.end).contains(&range.gateway));
    if held >= size {
        return Err(unavailable(format!(
            "IPAM range {}-{} is exhausted",
            range.start, range.end
        )));
    }
    Ok(())
}
