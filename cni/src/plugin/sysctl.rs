//! `/proc/sys` writes. Network sysctls resolve against the network namespace of the thread that
//! opens the file, so call these on the thread that is in the right namespace.

use std::fs;
use std::io;

/// Write `value` to `/proc/sys/<key with dots as slashes>` unless it already holds it.
pub fn ensure(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    match fs::read_to_string(&path) {
        Ok(cur) if cur.trim() == value => Ok(()),
        _ => fs::write(&path, value),
    }
}

/// Like [`ensure`] for per-interface keys (`net.ipv6.conf.<ifname>.accept_dad`), where the interface
/// name may contain dots. A missing file (IPv6 disabled) is not an error.
pub fn ensure_iface(prefix: &str, ifname: &str, leaf: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}/{ifname}/{leaf}", prefix.replace('.', "/"));
    match fs::read_to_string(&path) {
        Ok(cur) if cur.trim() == value => Ok(()),
        Ok(_) => fs::write(&path, value),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
