//! DEL: best effort and idempotent. Works without a netns, with the link gone, and always
//! releases the IPAM reservation.
//!
//! Deleting a veth makes the kernel wait for RCU grace periods (an `rcu_barrier` at RTNL unlock):
//! 15-30 ms on a busy host, the bulk of a DEL. So DEL takes the container interface down, renames
//! it out of the way (the name is free at once: an ADD right after DEL into the same namespace
//! works) and leaves the deletion to a detached copy of the plugin ([`reap`]). If that cannot
//! start, DEL deletes the link itself.

use std::path::Path;
use std::process::{Command, Stdio};

use rtnetlink::LinkUnspec;

use super::conf::NetConf;
use super::netlink::Netlink;
use super::{add, attachment, hostports, link, log, netns};
use crate::spec::{Env, Error};

/// Environment of the detached reaper: the netns path and the renamed interface to delete.
pub const REAP_NETNS: &str = "SKIFF_CNI_REAP_NETNS";
pub const REAP_IFNAME: &str = "SKIFF_CNI_REAP_IFNAME";

pub fn del(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), Error> {
    let (id, ifname) = attachment(env)?;
    let mut container_gone = false;
    if let Some(path) = env.netns.as_deref() {
        // A vanished or unmounted netns took its veth end (and so the pair) with it.
        match retire_container_link(path, id, ifname) {
            Ok(handled) => container_gone = handled,
            Err(e) => log(format!("DEL {id}/{ifname}: container side: {e}")),
        }
    }
    // The host end goes with the pair; this covers a pair whose container end is unreachable.
    // Its failure must not keep the address reserved: release first, report afterwards.
    let host = if container_gone {
        Ok(())
    } else {
        Netlink::open()
            .map_err(link::nl_err("failed to open netlink"))
            .and_then(|mut nl| link::delete_by_name(&mut nl, &link::host_veth_name(id, ifname)))
            .map(|_| ())
    };
    let ports = if conf.runtime_config.port_mappings.is_empty() {
        Ok(())
    } else {
        hostports::remove_for(conf.use_iptables(), &conf.nft_table, id, ifname)
    };
    add::release(env, conf, stdin, id, ifname)?;
    host?;
    ports
}

/// Make the container interface (and with it the veth pair) go away: down, renamed, and deleted
/// by a detached reaper. Ok(true) when the pair is gone or on its way out; Ok(false) when there
/// was no such interface (or no netns: a deleted netns is dismantled asynchronously by the
/// kernel, so the host end may still be there and the caller deletes it).
fn retire_container_link(path: &Path, id: &str, ifname: &str) -> Result<bool, Error> {
    if !path.exists() {
        return Ok(false);
    }
    let ns = netns::open(path)?;
    let doomed = format!(
        "skd{:012x}",
        link::fnv(&format!("{id}/{ifname}/{}", std::process::id())) & 0xffff_ffff_ffff
    );
    let renamed = netns::run_in(&ns, || {
        let mut nl =
            Netlink::open().map_err(link::nl_err("failed to open netlink in the netns"))?;
        let Some(l) = nl
            .link_by_name(ifname)
            .map_err(link::nl_err(format!("failed to look up {ifname}")))?
        else {
            return Ok(Some(false));
        };
        // The kernel renames before it applies flags, and refuses to rename a link that is up.
        let down = LinkUnspec::new_with_index(l.index).down().build();
        let rename = LinkUnspec::new_with_index(l.index)
            .name(doomed.clone())
            .build();
        match nl.set_link(down).and_then(|()| nl.set_link(rename)) {
            Ok(()) => Ok(Some(true)),
            Err(e) => {
                log(format!("cannot rename {ifname} for deferred deletion: {e}"));
                link::delete_by_name(&mut nl, ifname).map(|_| None)
            }
        }
    })?;
    match renamed {
        Some(true) => {
            if !spawn_reaper(path, &doomed) {
                netns::run_in(&ns, || {
                    let mut nl = Netlink::open()
                        .map_err(link::nl_err("failed to open netlink in the netns"))?;
                    link::delete_by_name(&mut nl, &doomed).map(|_| ())
                })?;
            }
            Ok(true)
        }
        Some(false) => Ok(false),
        None => Ok(true),
    }
}

/// Start `skiff-cni` again, detached, to delete the renamed link. Its stdio is /dev/null so the
/// runtime, reading our stdout to EOF, does not wait for it.
fn spawn_reaper(netns: &Path, ifname: &str) -> bool {
    let Ok(me) = std::env::current_exe() else {
        return false;
    };
    Command::new(me)
        .env_clear()
        .env(REAP_NETNS, netns)
        .env(REAP_IFNAME, ifname)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}

/// The reaper's whole job (see `main.rs`): delete `ifname` in the netns at `netns`.
pub fn reap(netns_path: &Path, ifname: &str) -> Result<(), Error> {
    if !ifname.starts_with("skd") {
        return Err(Error::env(format!("{REAP_IFNAME}: refusing {ifname:?}")));
    }
    let ns = netns::open(netns_path)?;
    netns::run_in(&ns, || {
        let mut nl =
            Netlink::open().map_err(link::nl_err("failed to open netlink in the netns"))?;
        link::delete_by_name(&mut nl, ifname).map(|_| ())
    })
}
