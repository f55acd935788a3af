//! DEL: best effort and idempotent. Works without a netns, with the link gone, and always
//! releases the IPAM reservation.

use std::path::Path;

use super::conf::NetConf;
use super::netlink::Netlink;
use super::{attachment, ipam, link, log, netns};
use crate::spec::{Env, Error};

pub fn del(env: &Env, conf: &NetConf) -> Result<(), Error> {
    let (id, ifname) = attachment(env)?;
    if let Some(path) = env.netns.as_deref() {
        // A vanished or unmounted netns took its veth end (and so the pair) with it.
        if let Err(e) = delete_container_link(path, ifname) {
            log(format!("DEL {id}/{ifname}: container side: {e}"));
        }
    }
    // The host end goes with the pair; this covers a pair whose container end is unreachable.
    // Its failure must not keep the address reserved: release first, report afterwards.
    let host = Netlink::open()
        .map_err(link::nl_err("failed to open netlink"))
        .and_then(|mut nl| link::delete_by_name(&mut nl, &link::host_veth_name(id, ifname)));
    if conf.ipam.is_some() {
        ipam::Store::open(&conf.data_dir()?)?.release(id, ifname)?;
    }
    host.map(|_| ())
}

fn delete_container_link(path: &Path, ifname: &str) -> Result<(), Error> {
    if !path.exists() {
        return Ok(());
    }
    let ns = netns::open(path)?;
    netns::run_in(&ns, || {
        let mut nl =
            Netlink::open().map_err(link::nl_err("failed to open netlink in the netns"))?;
        link::delete_by_name(&mut nl, ifname).map(|_| ())
    })
}
