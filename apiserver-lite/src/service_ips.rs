//! Cluster IP allocation for Services from the service CIDR (`--service-cluster-ip-range`).
//!
//! Each allocated address is a store key `/registry/serviceips/<ip>` created with create-if-absent
//! (`crate::reservations`), so two API servers (or two concurrent creates) can never hand out the same
//! address. The key is removed when the Service is deleted. The network address, the broadcast address, the
//! first host (`.1`, conventionally the `kubernetes` service) and the cluster DNS address (`--cluster-dns`,
//! the `kube-dns` Service's) are never allocated automatically: the controllers create those Services only
//! after the server is serving.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::reservations::{Reservations, random_scan};
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::Store;

pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
const IPS: Reservations = Reservations::new("/registry/serviceips/");

pub fn default_cidr() -> Ipv4Net {
    DEFAULT_SERVICE_CIDR
        .parse()
        .unwrap_or_else(|_| Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default())
}

/// The first host of the service CIDR: the `kubernetes` Service's address (never allocated automatically).
pub fn kubernetes_ip(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(1))
}

/// The tenth host of the service CIDR: the cluster DNS address by kubeadm's rule (10.96.0.10).
pub fn dns_ip(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(10))
}

/// Why `ip` cannot be the cluster DNS address in `cidr`, if it cannot.
pub fn check_dns_ip(cidr: Ipv4Net, ip: Ipv4Addr) -> Result<(), String> {
    if !cidr.contains(&ip) || ip == cidr.network() || ip == cidr.broadcast() {
        return Err(format!(
            "{ip} is not a host address of the service cluster IP range {cidr}"
        ));
    }
    if ip == kubernetes_ip(cidr) {
        return Err(format!("{ip} is the kubernetes Service's address"));
    }
    Ok(())
}

fn invalid(ip: &str, why: &str) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        "",
        &[FieldError::invalid(
            "spec.clusterIPs",
            &serde_json::json!([ip]),
            why,
        )],
    )
}

/// Reserve `requested` (must be inside `cidr` and free) or the first free address after a random start,
/// never `dns` (the cluster DNS address, which only its Service may ask for).
pub async fn allocate(
    store: &dyn Store,
    cidr: Ipv4Net,
    dns: Option<Ipv4Addr>,
    owner: &str,
    requested: Option<&str>,
) -> ApiResult<String> {
    if let Some(r) = requested {
        let ip: Ipv4Addr = r.parse().map_err(|_| {
            invalid(
                r,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
        })?;
        if !cidr.contains(&ip) {
            return Err(invalid(
                r,
                &format!(
                    "failed to allocate IP {r}: the provided IP ({r}) is not in the valid range. The range of valid IPs is {cidr}"
                ),
            ));
        }
        if !IPS.claim(store, ip, owner).await? {
            return Err(invalid(
                r,
                &format!("failed to allocate IP {r}: provided IP is already allocated"),
            ));
        }
        return Ok(ip.to_string());
    }
    let base = u32::from(cidr.network());
    let size = 1u64 << (32 - u32::from(cidr.prefix_len()));
    if size < 4 {
        return Err(ApiError::internal(format!(
            "service CIDR {cidr} is too small"
        )));
    }
    // Offsets 2..size-1: skip the network address, .1 and the broadcast address.
    let candidates = random_scan(size - 3)
        .map(|off| Ipv4Addr::from(base.wrapping_add(2 + off as u32)))
        .filter(|ip| dns != Some(*ip));
    match IPS.claim_first(store, candidates, owner).await? {
        Some(ip) => Ok(ip.to_string()),
        None => Err(ApiError::internal(format!(
            "failed to allocate a serviceIP: range {cidr} is full"
        ))),
    }
}

/// Give an address back (a missing key is fine).
pub async fn release(store: &dyn Store, ip: &str) -> ApiResult<()> {
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return Ok(());
    };
    Ok(IPS.release(store, ip).await?)
}

/// Give `ip` back only if `owner` holds it: a reservation left behind by an interrupted create of the Service
/// `owner` must not block creating it again.
pub async fn release_if_owned(store: &dyn Store, ip: Ipv4Addr, owner: &str) -> ApiResult<()> {
    Ok(IPS.release_if_owned(store, ip, owner).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allocates_unique_addresses_in_range() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::redb::RedbStore::open(&dir.path().join("s.redb")).expect("store");
        let cidr: Ipv4Net = "10.96.0.0/29".parse().expect("cidr");
        let mut got = Vec::new();
        for i in 0..5 {
            let ip = allocate(&store, cidr, None, &format!("svc{i}"), None)
                .await
                .expect("alloc");
            assert!(cidr.contains(&ip.parse::<Ipv4Addr>().expect("ip")));
            assert!(!got.contains(&ip));
            assert!(ip != "10.96.0.0" && ip != "10.96.0.1" && ip != "10.96.0.7");
            got.push(ip);
        }
        assert!(allocate(&store, cidr, None, "full", None).await.is_err());
        release(&store, &got[0]).await.expect("release");
        let again = allocate(&store, cidr, None, "again", None)
            .await
            .expect("alloc");
        assert_eq!(again, got[0]);
        let e = allocate(&store, cidr, None, "x", Some(&got[1]))
            .await
            .expect_err("taken");
        assert_eq!(e.code, 422);
        let e = allocate(&store, cidr, None, "x", Some("10.0.0.1"))
            .await
            .expect_err("range");
        assert!(e.message.contains("not in the valid range"));
        assert_eq!(default_cidr().to_string(), "10.96.0.0/12");
        assert_eq!(kubernetes_ip(default_cidr()), Ipv4Addr::new(10, 96, 0, 1));
        let first = kubernetes_ip(cidr);
        allocate(
            &store,
            cidr,
            None,
            "/registry/services/default/kubernetes",
            Some("10.96.0.1"),
        )
        .await
        .expect("explicit .1");
        release_if_owned(&store, first, "someone else")
            .await
            .expect("kept");
        assert!(
            allocate(&store, cidr, None, "x", Some("10.96.0.1"))
                .await
                .is_err()
        );
        release_if_owned(&store, first, "/registry/services/default/kubernetes")
            .await
            .expect("released");
        allocate(&store, cidr, None, "y", Some("10.96.0.1"))
            .await
            .expect("free again");
    }

    #[tokio::test]
    async fn the_cluster_dns_address_is_only_given_on_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::redb::RedbStore::open(&dir.path().join("s.redb")).expect("store");
        let cidr: Ipv4Net = "10.96.0.0/28".parse().expect("cidr");
        let dns = dns_ip(cidr);
        assert_eq!(dns, Ipv4Addr::new(10, 96, 0, 10));
        // .2 to .14 are allocatable: 13 addresses, all but the DNS one handed out automatically.
        for i in 0..12 {
            let ip = allocate(&store, cidr, Some(dns), &format!("svc{i}"), None)
                .await
                .expect("alloc");
            assert_ne!(ip, "10.96.0.10");
        }
        let e = allocate(&store, cidr, Some(dns), "full", None)
            .await
            .expect_err("full");
        assert!(e.message.contains("is full"), "{}", e.message);
        allocate(&store, cidr, Some(dns), "dns", Some("10.96.0.10"))
            .await
            .expect("on request");
    }

    #[test]
    fn cluster_dns_addresses_are_checked() {
        let cidr = default_cidr();
        assert_eq!(dns_ip(cidr), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(check_dns_ip(cidr, dns_ip(cidr)), Ok(()));
        assert_eq!(check_dns_ip(cidr, Ipv4Addr::new(10, 111, 255, 254)), Ok(()));
        let e = check_dns_ip(cidr, Ipv4Addr::new(10, 0, 0, 10)).expect_err("outside");
        assert_eq!(
            e,
            "10.0.0.10 is not a host address of the service cluster IP range 10.96.0.0/12"
        );
        for edge in [
            Ipv4Addr::new(10, 96, 0, 0),
            Ipv4Addr::new(10, 111, 255, 255),
        ] {
            assert!(check_dns_ip(cidr, edge).is_err(), "{edge}");
        }
        let e = check_dns_ip(cidr, Ipv4Addr::new(10, 96, 0, 1)).expect_err("kubernetes");
        assert_eq!(e, "10.96.0.1 is the kubernetes Service's address");
        // A range too small for kubeadm's rule has no default DNS address.
        let tiny: Ipv4Net = "10.96.0.0/29".parse().expect("cidr");
        assert!(check_dns_ip(tiny, dns_ip(tiny)).is_err());
    }
}
