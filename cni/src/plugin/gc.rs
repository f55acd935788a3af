//! GC (1.1): release every IPAM reservation of this network's subnet that is not in
//! `cni.dev/valid-attachments`.

use super::conf::NetConf;
use super::{ipam, log};
use crate::spec::Error;

pub fn gc(conf: &NetConf) -> Result<(), Error> {
    // Without the list we cannot tell stale from live: refusing beats releasing everything.
    let valid = conf
        .valid_attachments()
        .ok_or_else(|| Error::config("GC requires cni.dev/valid-attachments"))?;
    let Some(ipam_conf) = &conf.ipam else {
        return Ok(());
    };
    let subnet = ipam_conf.range()?.subnet;
    let freed = ipam::Store::open(&conf.data_dir()?)?.gc(&subnet, valid)?;
    if !freed.is_empty() {
        log(format!("GC released {freed:?}"));
    }
    Ok(())
}
