//! Built-in IPAM in the style of host-local: one file per reserved address, named after the address
//! and holding `containerID\r\nifname`, created with O_EXCL while an flock on `<dir>/lock` is held;
//! `last_reserved_ip.0` makes allocation round-robin. The on-disk format is host-local's, so the
//! reservations can be read by the same tools.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};

use super::conf::Range;
use crate::spec::{Error, ErrorCode, ValidAttachment};

const LOCK_FILE: &str = "lock";

fn unavailable(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::IP_UNAVAILABLE, msg)
}
const LAST_RESERVED: &str = "last_reserved_ip.0";

/// An open reservation directory; the flock is held until the store is dropped.
pub struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

/// One reservation on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: Ipv4Addr,
    pub container_id: String,
    /// Empty for files written by old host-local versions (container id only).
    pub ifname: String,
}

impl Reservation {
    fn belongs_to(&self, container_id: &str, ifname: &str) -> bool {
        self.container_id == container_id && (self.ifname.is_empty() || self.ifname == ifname)
    }
}

impl Store {
    /// Create the directory if needed and take the exclusive lock.
    pub fn open(dir: &Path) -> Result<Store, Error> {
        fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("failed to create IPAM dir {}", dir.display()), &e))?;
        let lock_path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("failed to open {}", lock_path.display()), &e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| {
            Error::io(
                format!("failed to lock {}", lock_path.display()),
                &io::Error::from(errno),
            )
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The reserved addresses, from the file names alone (STATUS needs no owners: reading every
    /// reservation file made each STATUS cost one open and read per pod).
    pub fn reserved_ips(&self) -> Result<Vec<Ipv4Addr>, Error> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("failed to list {}", self.dir.display()), &e))?;
        Ok(rd
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<Ipv4Addr>().ok())
            .collect())
    }

    /// Every reservation in the directory. Unreadable entries are skipped: a file that vanished
    /// between listing and reading was released by someone holding the lock incorrectly.
    pub fn reservations(&self) -> Result<Vec<Reservation>, Error> {
        let rd = fs::read_dir(&self.dir)
            .map_err(|e| Error::io(format!("failed to list {}", self.dir.display()), &e))?;
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let Ok(content) = fs::read_to_string(entry.path()) else {
                continue;
            };
            let mut lines = content.lines().map(str::trim);
            let container_id = lines.next().unwrap_or_default().to_string();
            let ifname = lines.next().unwrap_or_default().to_string();
            out.push(Reservation {
                ip,
                container_id,
                ifname,
            });
        }
        Ok(out)
    }

    /// The address held by (container id, ifname), if any.
    pub fn find(&self, container_id: &str, ifname: &str) -> Result<Option<Ipv4Addr>, Error> {
        Ok(self
            .reservations()?
            .into_iter()
            .find(|r| r.belongs_to(container_id, ifname))
            .map(|r| r.ip))
    }

    /// Reserve an address for (container id, ifname) from a range set: the one it already holds (a
    /// repeated ADD gets the same address), the requested one (`ips` capability / `IP=`), else the
    /// next free one after the last reservation, across the ranges in order, wrapping around.
    /// Returns the address and the range it came from.
    pub fn allocate(
        &self,
        ranges: &[Range],
        requested: Option<Ipv4Addr>,
        container_id: &str,
        ifname: &str,
    ) -> Result<(Ipv4Addr, Range), Error> {
        let existing = self.reservations()?;
        let range_of = |ip: Ipv4Addr| ranges.iter().find(|r| r.contains(ip)).copied();
        let held = existing
            .iter()
            .filter(|r| r.belongs_to(container_id, ifname))
            .find_map(|r| range_of(r.ip).map(|range| (r.ip, range)));
        if let Some(ip) = requested {
            let range = range_of(ip).ok_or_else(|| {
                Error::config(format!("requested IP {ip} is outside the IPAM ranges"))
            })?;
            if ip == range.gateway {
                return Err(Error::config(format!(
                    "requested IP {ip} is the gateway of its range"
                )));
            }
            if let Some((have, _)) = held {
                if have == ip {
                    return Ok((ip, range));
                }
                return Err(unavailable(format!(
                    "{container_id}/{ifname} already holds {have}, cannot also take {ip}"
                )));
            }
            return match self.reserve(ip, container_id, ifname)? {
                true => Ok((ip, range)),
                false => Err(unavailable(format!(
                    "requested IP {ip} is already reserved"
                ))),
            };
        }
        if let Some(h) = held {
            return Ok(h);
        }
        let taken: HashSet<Ipv4Addr> = existing.iter().map(|r| r.ip).collect();
        // Positions 0..total over the concatenated ranges; start after the last reservation.
        let total: u64 = ranges
            .iter()
            .map(|r| u64::from(u32::from(r.end) - u32::from(r.start)) + 1)
            .sum();
        let position = |ip: Ipv4Addr| -> Option<u64> {
            let mut base = 0u64;
            for r in ranges {
                if r.contains(ip) {
                    return Some(base + u64::from(u32::from(ip) - u32::from(r.start)));
                }
                base += u64::from(u32::from(r.end) - u32::from(r.start)) + 1;
            }
            None
        };
        let at = |mut pos: u64| -> Option<(Ipv4Addr, Range)> {
            for r in ranges {
                let len = u64::from(u32::from(r.end) - u32::from(r.start)) + 1;
                if pos < len {
                    let ip = Ipv4Addr::from(u32::from(r.start) + pos as u32);
                    return Some((ip, *r));
                }
                pos -= len;
            }
            None
        };
        let first = self
            .last_reserved()
            .and_then(position)
            .map_or(0, |p| (p + 1) % total.max(1));
        for step in 0..total {
            let Some((ip, range)) = at((first + step) % total) else {
                continue;
            };
            if ip == range.gateway || taken.contains(&ip) {
                continue;
            }
            if self.reserve(ip, container_id, ifname)? {
                self.set_last_reserved(ip)?;
                return Ok((ip, range));
            }
        }
        let spans: Vec<String> = ranges
            .iter()
            .map(|r| format!("{}-{}", r.start, r.end))
            .collect();
        Err(Error::new(
            ErrorCode::IPAM_EXHAUSTED,
            format!(
                "no IP addresses available in range set {}",
                spans.join(", ")
            ),
        ))
    }

    /// Create the reservation file with O_EXCL; Ok(false) when the address is taken.
    fn reserve(&self, ip: Ipv4Addr, container_id: &str, ifname: &str) -> Result<bool, Error> {
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(Error::io(format!("failed to reserve {ip}"), &e)),
        };
        if let Err(e) = f.write_all(format!("{container_id}\r\n{ifname}").as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(Error::io(
                format!("failed to write reservation {}", path.display()),
                &e,
            ));
        }
        Ok(true)
    }

    fn last_reserved(&self) -> Option<Ipv4Addr> {
        fs::read_to_string(self.dir.join(LAST_RESERVED))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn set_last_reserved(&self, ip: Ipv4Addr) -> Result<(), Error> {
        let tmp = self.dir.join(format!(".{LAST_RESERVED}.tmp"));
        fs::write(&tmp, ip.to_string())
            .and_then(|()| fs::rename(&tmp, self.dir.join(LAST_RESERVED)))
            .map_err(|e| Error::io("failed to record the last reserved address", &e))
    }

    /// Release everything (container id, ifname) holds; releasing nothing is fine (idempotent DEL).
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Vec<Ipv4Addr>, Error> {
        let doomed: Vec<Ipv4Addr> = self
            .reservations()?
            .into_iter()
            .filter(|r| r.belongs_to(container_id, ifname))
            .map(|r| r.ip)
            .collect();
        self.remove(&doomed)?;
        Ok(doomed)
    }

    /// Release every reservation inside the subnets that no valid attachment holds (GC).
    /// Addresses outside them belong to another configuration sharing the directory (e.g. several
    /// nodes of a one-host lab) and are left alone.
    pub fn gc(
        &self,
        subnets: &[Ipv4Net],
        valid: &[ValidAttachment],
    ) -> Result<Vec<Ipv4Addr>, Error> {
        let doomed: Vec<Ipv4Addr> = self
            .reservations()?
            .into_iter()
            .filter(|r| subnets.iter().any(|s| s.contains(&r.ip)))
            .filter(|r| {
                !valid
                    .iter()
                    .any(|v| r.belongs_to(&v.container_id, &v.ifname))
            })
            .map(|r| r.ip)
            .collect();
        self.remove(&doomed)?;
        Ok(doomed)
    }

    fn remove(&self, ips: &[Ipv4Addr]) -> Result<(), Error> {
        for ip in ips {
            match fs::remove_file(self.dir.join(ip.to_string())) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("failed to release {ip}"), &e)),
            }
        }
        Ok(())
    }
}

/// STATUS: the directory exists (or can be created) and accepts new files.
pub fn check_writable(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let probe = dir.join(format!(".status-probe-{}", std::process::id()));
    fs::write(&probe, b"")?;
    fs::remove_file(&probe)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::plugin::conf::IpamConf;

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>) -> Vec<Range> {
        IpamConf {
            subnet: Some(subnet.parse().unwrap()),
            range_start: start.map(|s| s.parse().unwrap()),
            range_end: end.map(|s| s.parse().unwrap()),
            ..IpamConf::default()
        }
        .range_set()
        .unwrap()
    }

    fn alloc(s: &Store, r: &[Range], id: &str) -> Result<Ipv4Addr, Error> {
        s.allocate(r, None, id, "eth0").map(|(ip, _)| ip)
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("skiff-ipam-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn allocates_round_robin_and_reuses() {
        let dir = tmpdir("rr");
        let r = range("10.7.0.0/29", None, None);
        let s = Store::open(&dir).unwrap();
        let a = alloc(&s, &r, "c1").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 7, 0, 2), "gateway .1 is skipped");
        assert_eq!(
            alloc(&s, &r, "c1").unwrap(),
            a,
            "repeat ADD keeps the address"
        );
        let b = alloc(&s, &r, "c2").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 7, 0, 3));
        assert_eq!(
            fs::read_to_string(dir.join("10.7.0.3")).unwrap(),
            "c2\r\neth0"
        );
        s.release("c1", "eth0").unwrap();
        // round-robin continues after the last reservation instead of reusing .2 at once
        assert_eq!(alloc(&s, &r, "c3").unwrap(), Ipv4Addr::new(10, 7, 0, 4));
        for i in 4..=5 {
            alloc(&s, &r, &format!("x{i}")).unwrap();
        }
        // .2 is the only free one left: wrap-around finds it
        assert_eq!(alloc(&s, &r, "c4").unwrap(), Ipv4Addr::new(10, 7, 0, 2));
        let e = alloc(&s, &r, "c5").unwrap_err();
        assert_eq!(e.code, ErrorCode::IPAM_EXHAUSTED);
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn range_sets_and_requested_ips() {
        let dir = tmpdir("set");
        let set = IpamConf {
            ranges: vec![vec![
                serde_json::from_str(
                    r#"{"subnet":"10.7.2.0/24","rangeStart":"10.7.2.10","rangeEnd":"10.7.2.11"}"#,
                )
                .unwrap(),
                serde_json::from_str(r#"{"subnet":"10.7.3.0/30"}"#).unwrap(),
            ]],
            ..IpamConf::default()
        }
        .range_set()
        .unwrap();
        let s = Store::open(&dir).unwrap();
        let want = |v: [u8; 4]| Ipv4Addr::from(v);
        assert_eq!(alloc(&s, &set, "a").unwrap(), want([10, 7, 2, 10]));
        assert_eq!(alloc(&s, &set, "b").unwrap(), want([10, 7, 2, 11]));
        let (ip, r) = s.allocate(&set, None, "c", "eth0").unwrap();
        assert_eq!(
            ip,
            want([10, 7, 3, 2]),
            "second range, its gateway .1 skipped"
        );
        assert_eq!(r.gateway, want([10, 7, 3, 1]));
        assert_eq!(
            alloc(&s, &set, "d").unwrap_err().code,
            ErrorCode::IPAM_EXHAUSTED
        );
        s.release("a", "eth0").unwrap();
        // requested: taken, outside, gateway, free
        let req = |ip: [u8; 4], id: &str| s.allocate(&set, Some(want(ip)), id, "eth0");
        assert_eq!(
            req([10, 7, 2, 11], "d").unwrap_err().code,
            ErrorCode::IP_UNAVAILABLE
        );
        assert_eq!(req([10, 7, 9, 1], "d").unwrap_err().code, ErrorCode(7));
        assert_eq!(req([10, 7, 3, 1], "d").unwrap_err().code, ErrorCode(7));
        assert_eq!(req([10, 7, 2, 10], "d").unwrap().0, want([10, 7, 2, 10]));
        assert_eq!(
            req([10, 7, 2, 10], "d").unwrap().0,
            want([10, 7, 2, 10]),
            "repeat"
        );
        drop(s);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gc_and_legacy_files() {
        let dir = tmpdir("gc");
        let r = range("10.7.1.0/24", Some("10.7.1.10"), Some("10.7.1.20"));
        let s = Store::open(&dir).unwrap();
        alloc(&s, &r, "keep").unwrap();
        alloc(&s, &r, "stale").unwrap();
        fs::write(dir.join("10.7.1.19"), "legacy\n").unwrap();
        let valid = vec![ValidAttachment {
            container_id: "keep".into(),
            ifname: "eth0".into(),
        }];
        fs::write(dir.join("10.8.0.9"), "other-subnet\r\neth0").unwrap();
        let mut freed = s.gc(&[r[0].subnet], &valid).unwrap();
        assert!(dir.join("10.8.0.9").exists(), "other subnets are not GC'd");
        freed.sort();
        assert_eq!(
            freed,
            vec![Ipv4Addr::new(10, 7, 1, 11), Ipv4Addr::new(10, 7, 1, 19)]
        );
        assert_eq!(
            s.find("keep", "eth0").unwrap(),
            Some(Ipv4Addr::new(10, 7, 1, 10))
        );
        assert!(s.release("nobody", "eth0").unwrap().is_empty());
        drop(s);
        check_writable(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
