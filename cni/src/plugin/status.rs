//! STATUS (1.1): ready for ADD when the bridge (if present) is a usable bridge, the IPAM directory
//! takes new files and the range still has a free address.

use super::conf::NetConf;
use super::netlink::Netlink;
use super::{delegate, ipam, link};
use crate::spec::{Command, Env, Error, ErrorCode};

fn unavailable(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::NOT_AVAILABLE, msg)
}

pub fn status(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), Error> {
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
    if let Some(plugin) = &conf.delegate {
        // Spec: STATUS is forwarded to the delegated IPAM plugin.
        return delegate::run(plugin, Command::Status, env, stdin).map(|_| ());
    }
    let set = conf.ipam().map_err(|e| unavailable(e.msg))?.range_set()?;
    let dir = conf.data_dir()?;
    ipam::check_writable(&dir).map_err(|e| {
        unavailable(format!("IPAM dir {} is not writable", dir.display()))
            .with_details(e.to_string())
    })?;
    let store = ipam::Store::open(&dir).map_err(|e| unavailable(e.msg).with_details(e.details))?;
    let held = store
        .reserved_ips()
        .map_err(|e| unavailable(e.msg).with_details(e.details))?
        .iter()
        .filter(|&&ip| set.iter().any(|s| s.contains(ip) && ip != s.gateway))
        .count();
    let size: u64 = set.iter().map(|r| u64::from(r.size())).sum();
    if held as u64 >= size {
        let spans: Vec<String> = set
            .iter()
            .map(|r| format!("{}-{}", r.start, r.end))
            .collect();
        return Err(unavailable(format!(
            "IPAM range set {} is exhausted",
            spans.join(", ")
        )));
    }
    Ok(())
}
