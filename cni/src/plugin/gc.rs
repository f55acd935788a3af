//! GC (1.1): release every IPAM reservation of this network's ranges, and remove every host-port
//! rule, that is not in `cni.dev/valid-attachments`; a delegated IPAM plugin gets the GC too.

use super::conf::NetConf;
use super::{delegate, hostports, ipam, log};
use crate::spec::{Command, Env, Error};

pub fn gc(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<(), Error> {
    // Without the list we cannot tell stale from live: refusing beats releasing everything.
    let valid = conf
        .valid_attachments()
        .ok_or_else(|| Error::config("GC requires cni.dev/valid-attachments"))?;
    // Keep going past errors (spec: GC is best effort); report the first.
    let mut first: Option<Error> = None;
    match hostports::gc_for(conf.use_iptables(), &conf.nft_table, valid) {
        Ok(0) => {}
        Ok(n) => log(format!("GC removed {n} stale host-port rules")),
        Err(e) => first = first.or(Some(e)),
    }
    if let Some(plugin) = &conf.delegate {
        if let Err(e) = delegate::run(plugin, Command::Gc, env, stdin) {
            first = first.or(Some(e));
        }
    } else if let Some(ipam_conf) = &conf.ipam {
        let subnets: Vec<_> = ipam_conf.range_set()?.iter().map(|r| r.subnet).collect();
        match ipam::Store::open(&conf.data_dir()?).and_then(|s| s.gc(&subnets, valid)) {
            Ok(freed) if !freed.is_empty() => log(format!("GC released {freed:?}")),
            Ok(_) => {}
            Err(e) => first = first.or(Some(e)),
        }
    }
    first.map_or(Ok(()), Err)
}
