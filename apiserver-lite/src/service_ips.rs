//! Cluster IP allocation for Services from the service CIDR (`--service-cluster-ip-range`).
//!
//! Each allocated address is a store key `/registry/serviceips/<ip>` created with create-if-absent, so two
//! API servers (or two concurrent creates) can never hand out the same address. The key is removed when the
//! Service is deleted. The network address, the broadcast address and the first host (`.1`, conventionally
//! the `kubernetes` service) are never allocated automatically.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{Store, StoreError};

pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
const PREFIX: &str = "/registry/serviceips/";

pub fn default_cidr() -> Ipv4Net {
    DEFAULT_SERVICE_CIDR
        .parse()
        .unwrap_or_else(|_| Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 12).unwrap_or_default())
}

/// The first host of the service CIDR: the `kubernetes` Service's address (never allocated automatically).
pub fn kubernetes_ip(cidr: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(cidr.network()).wrapping_add(1))
}

fn key(ip: Ipv4Addr) -> String {
    format!("{PREFIX}{ip}")
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

/// Reserve `requested` (must be inside `cidr` and free) or the first free address after a random start.
pub async fn allocate(
    store: &dyn Store,
    cidr: Ipv4Net,
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
        return match store.create(&key(ip), owner.as_bytes().to_vec()).await {
            Ok(_) => Ok(ip.to_string()),
            Err(StoreError::AlreadyExists(_)) => Err(invalid(
                r,
                &format!("failed to allocate IP {r}: provided IP is already allocated"),
            )),
            Err(e) => Err(e.into()),
        };
    }
    let base = u32::from(cidr.network());
    let size = 1u64 << (32 - u32::from(cidr.prefix_len()));
    if size < 4 {
        return Err(ApiError::internal(format!(
            "service CIDR {cidr} is too small"
        )));
    }
    // Offsets 2..size-1: skip the network address, .1 and the broadcast address.
    let usable = size - 3;
    let start = u64::from(uuid::Uuid::new_v4().as_u128() as u32) % usable;
    let (used, _) = store.list(PREFIX).await?;
    let taken: std::collections::HashSet<&str> = used
        .iter()
        .filter_map(|kv| kv.key.strip_prefix(PREFIX))
        .collect();
    for i in 0..usable {
        let off = 2 + (start + i) % usable;
        let ip = Ipv4Addr::from(base.wrapping_add(off as u32));
        let s = ip.to_string();
        if taken.contains(s.as_str()) {
            continue;
        }
        match store.create(&key(ip), owner.as_bytes().to_vec()).await {
            Ok(_) => return Ok(s),
            Err(StoreError::AlreadyExists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal(format!(
        "failed to allocate a serviceIP: range {cidr} is full"
    )))
}

/// Give an address back (a missing key is fine).
pub async fn release(store: &dyn Store, ip: &str) -> ApiResult<()> {
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return Ok(());
    };
    match store.delete(&key(ip), None).await {
        Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Give `ip` back only if `owner` holds it: a reservation left behind by an interrupted create of the Service
/// `owner` must not block creating it again.
pub async fn release_if_owned(store: &dyn Store, ip: Ipv4Addr, owner: &str) -> ApiResult<()> {
    let Some(kv) = store.get(&key(ip)).await? else {
        return Ok(());
    };
    if kv.value != owner.as_bytes() {
        return Ok(());
    }
    match store.delete(&key(ip), Some(kv.mod_revision)).await {
        Ok(_) | Err(StoreError::NotFound(_)) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
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
            let ip = allocate(&store, cidr, &format!("svc{i}"), None)
                .await
                .expect("alloc");
            assert!(cidr.contains(&ip.parse::<Ipv4Addr>().expect("ip")));
            assert!(!got.contains(&ip));
            assert!(ip != "10.96.0.0" && ip != "10.96.0.1" && ip != "10.96.0.7");
            got.push(ip);
        }
        assert!(allocate(&store, cidr, "full", None).await.is_err());
        release(&store, &got[0]).await.expect("release");
        let again = allocate(&store, cidr, "again", None).await.expect("alloc");
        assert_eq!(again, got[0]);
        let e = allocate(&store, cidr, "x", Some(&got[1]))
            .await
            .expect_err("taken");
        assert_eq!(e.code, 422);
        let e = allocate(&store, cidr, "x", Some("10.0.0.1"))
            .await
            .expect_err("range");
        assert!(e.message.contains("not in the valid range"));
        assert_eq!(default_cidr().to_string(), "10.96.0.0/12");
        assert_eq!(kubernetes_ip(default_cidr()), Ipv4Addr::new(10, 96, 0, 1));
        let first = kubernetes_ip(cidr);
        allocate(
            &store,
            cidr,
            "/registry/services/default/kubernetes",
            Some("10.96.0.1"),
        )
        .await
        .expect("explicit .1");
        release_if_owned(&store, first, "someone else")
            .await
            .expect("kept");
        assert!(
            allocate(&store, cidr, "x", Some("10.96.0.1"))
                .await
                .is_err()
        );
        release_if_owned(&store, first, "/registry/services/default/kubernetes")
            .await
            .expect("released");
        allocate(&store, cidr, "y", Some("10.96.0.1"))
            .await
            .expect("free again");
    }
}
