//! Node ports for NodePort and LoadBalancer Services from `--service-node-port-range`, allocated as
//! kube-apiserver does (`pkg/registry/core/service/storage/alloc.go`, `portallocator`).
//!
//! - A node port number is allocated once, whatever the protocol: it is one store key
//!   `/registry/servicenodeports/<port>` (`crate::reservations`, create-if-absent, so concurrent creates and
//!   API servers sharing one etcd never hand out one port twice). On create, ports of one Service with the
//!   same `port` share a node port (`initNodePorts`: 53/TCP and 53/UDP get one number); anything else that
//!   asks for a held number gets `provided port is already allocated`.
//! - A port without `nodePort` gets a random free one: first from the upper part of the range, then from the
//!   lower part kept for ports asked for by number (`randomScanStrategyWithOffset`, KEP-3668).
//! - On update, node ports the old object held are kept, new ones allocated, and those the new object no
//!   longer uses freed once the write succeeded; everything reserved is given back when it fails.
//! - A LoadBalancer with `externalTrafficPolicy: Local` also gets `healthCheckNodePort` from the range.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::reservations::{Reservations, random_scan};
use crate::resources::service;
use crate::status::{ApiError, ApiResult, FieldError};
use crate::store::{Store, StoreError};

#[cfg(test)]
mod tests;

const PORTS: Reservations = Reservations::new("/registry/servicenodeports/");

/// An inclusive range of node ports (`--service-node-port-range`, default 30000-32767).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            first: 30000,
            last: 32767,
        }
    }
}

/// kube's `net.ParsePortRange`: `FIRST-LAST`, `FIRST+COUNT` (FIRST to FIRST+COUNT) or one port.
impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let number = |s: &str| {
            s.trim().parse::<u32>().map_err(|_| {
                "expected FIRST-LAST (e.g. 30000-32767), FIRST+COUNT or one port".to_string()
            })
        };
        let (first, last) = match (text.split_once('-'), text.split_once('+')) {
            (Some((a, b)), None) => (number(a)?, number(b)?),
            (None, Some((a, n))) => (number(a)?, number(a)? + number(n)?),
            (None, None) => (number(text)?, number(text)?),
            _ => return Err("unable to parse port range".into()),
        };
        if first == 0 || first > 65535 || last > 65535 {
            return Err("ports must be between 1 and 65535".into());
        }
        if last < first {
            return Err("end port cannot be less than start port".into());
        }
        Ok(PortRange {
            first: first as u16,
            last: last as u16,
        })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl PortRange {
    fn contains(&self, port: i64) -> bool {
        (i64::from(self.first)..=i64::from(self.last)).contains(&port)
    }

    /// Free ports are looked for in this order: the upper part of the range from a random start, then the
    /// lower part, which is thereby kept for ports asked for by number.
    fn scan(self) -> impl Iterator<Item = u16> {
        let size = u64::from(self.last - self.first) + 1;
        let lower = lower_band(size);
        random_scan(size - lower)
            .map(move |o| lower + o)
            .chain(random_scan(lower))
            .map(move |o| self.first + o as u16)
    }
}

/// The size of the lower part of a range of `size` ports: 1/32 of it, at least 16 and at most 128; none in a
/// range of 16 ports or fewer (kube's `calculateRangeOffset`).
fn lower_band(size: u64) -> u64 {
    if size <= 16 {
        0
    } else {
        (size / 32).clamp(16, 128)
    }
}

/// Why a port could not be had: kube's portallocator errors, word for word.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("provided port is not in the valid range. The range of valid ports is {0}")]
    NotInRange(PortRange),
    #[error("provided port is already allocated")]
    Allocated,
    #[error("range is full")]
    Full,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one create or update reserved and what it frees: [`Allocation::revert`] when the write of the
/// Service fails, [`Allocation::commit`] once it succeeded.
#[derive(Debug, Default)]
#[must_use]
pub struct Allocation {
    owner: String,
    claimed: Vec<i64>,
    freed: Vec<i64>,
}

impl Allocation {
    pub async fn commit(self, store: &dyn Store) {
        give_back(store, &self.owner, self.freed).await;
    }

    pub async fn revert(self, store: &dyn Store) {
        give_back(store, &self.owner, self.claimed).await;
    }
}

/// Release those of `ports` that `owner` holds (never another Service's, whatever a spec says). A failure
/// is logged and leaves the port held: there is no repair loop as in kube-apiserver.
async fn give_back(store: &dyn Store, owner: &str, ports: impl IntoIterator<Item = i64>) {
    for port in ports.into_iter().filter_map(|p| u16::try_from(p).ok()) {
        if let Err(e) = PORTS.release_if_owned(store, port, owner).await {
            tracing::warn!(port, owner, "releasing a node port: {e}");
        }
    }
}

/// Free every node port of the deleted Service `svc`, stored under `owner`.
pub async fn release(store: &dyn Store, owner: &str, svc: &Value) {
    let held = service::node_ports(svc);
    give_back(
        store,
        owner,
        held.into_iter().chain(service::health_check_node_port(svc)),
    )
    .await;
}

/// Reserve the node ports of `new` for `owner` (its store key): a created Service (`old` is `None`) or an
/// update from `old`. Fills in the ports it allocates.
pub async fn allocate(
    store: &dyn Store,
    range: PortRange,
    owner: &str,
    old: Option<&Value>,
    new: &mut Value,
) -> ApiResult<Allocation> {
    let mut op = Operation {
        store,
        range,
        owner,
        name: new
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        claimed: Vec::new(),
    };
    let done = match old {
        None => op.create(new).await.map(|()| Vec::new()),
        Some(old) => op.update(old, new).await,
    };
    let claimed = op.claimed.into_iter().map(i64::from).collect();
    let allocation = |freed| Allocation {
        owner: owner.to_string(),
        claimed,
        freed,
    };
    match done {
        Ok(freed) => Ok(allocation(freed)),
        Err(e) => {
            allocation(Vec::new()).revert(store).await;
            Err(e)
        }
    }
}

/// One Service's allocation in progress.
struct Operation<'a> {
    store: &'a dyn Store,
    range: PortRange,
    owner: &'a str,
    name: String,
    claimed: Vec<u16>,
}

impl Operation<'_> {
    async fn claim(&mut self, port: i64) -> Result<(), Refused> {
        if !self.range.contains(port) {
            return Err(Refused::NotInRange(self.range));
        }
        let port = port as u16;
        if !PORTS.claim(self.store, port, self.owner).await? {
            return Err(Refused::Allocated);
        }
        self.claimed.push(port);
        Ok(())
    }

    async fn claim_next(&mut self) -> Result<i64, Refused> {
        let port = PORTS
            .claim_first(self.store, self.range.scan(), self.owner)
            .await?
            .ok_or(Refused::Full)?;
        self.claimed.push(port);
        Ok(i64::from(port))
    }

    /// `ports[i]` asks for `port`: 422 when it is out of range or held.
    async fn claim_requested(&mut self, i: usize, port: i64) -> ApiResult<()> {
        match self.claim(port).await {
            Ok(()) => Ok(()),
            Err(Refused::Store(e)) => Err(e.into()),
            Err(why) => Err(ApiError::invalid(
                "",
                "Service",
                &self.name,
                &[FieldError::invalid(
                    format!("spec.ports[{i}].nodePort"),
                    &json!(port),
                    &why.to_string(),
                )],
            )),
        }
    }

    async fn claim_any(&mut self) -> ApiResult<i64> {
        self.claim_next().await.map_err(|why| match why {
            Refused::Store(e) => e.into(),
            why => ApiError::internal(format!("failed to allocate a nodePort: {why}")),
        })
    }

    /// kube's `initNodePorts` and, for `externalTrafficPolicy: Local` load balancers, the health check port.
    async fn create(&mut self, svc: &mut Value) -> ApiResult<()> {
        if service::needs_node_ports(svc) {
            let allocate = service::allocates_node_ports(svc);
            let ports = port_list(svc);
            let number = |p: &Value| p.get("port").and_then(Value::as_i64);
            let mut by_number: HashMap<Option<i64>, i64> = HashMap::new();
            for (i, p) in ports.iter().enumerate() {
                let asked = service::node_port(p);
                if asked.is_none() && !allocate {
                    continue;
                }
                let np = match (by_number.get(&number(p)), asked) {
                    (Some(&shared), None) => shared,
                    (Some(&shared), Some(np)) if np == shared => continue,
                    (Some(_), Some(np)) => self.claim_requested(i, np).await.map(|()| np)?,
                    (None, _) => {
                        // The first port with this number that asks for a node port decides for all of them.
                        let asked = ports
                            .iter()
                            .filter(|q| number(q) == number(p))
                            .find_map(service::node_port);
                        let np = match asked {
                            Some(np) => self.claim_requested(i, np).await.map(|()| np)?,
                            None => self.claim_any().await?,
                        };
                        by_number.insert(number(p), np);
                        np
                    }
                };
                set_node_port(svc, i, np);
            }
        }
        if service::needs_health_check(svc) {
            self.claim_health_check(svc).await?;
        }
        Ok(())
    }

    /// kube's `txnUpdateNodePorts`; returns the ports to free once the update is written.
    async fn update(&mut self, old: &Value, new: &mut Value) -> ApiResult<Vec<i64>> {
        // kube counts any node port of the old object as held; only these types had theirs allocated.
        let held = if service::needs_node_ports(old) {
            service::node_ports(old)
        } else {
            HashSet::new()
        };
        if service::needs_node_ports(new) {
            let allocate = service::allocates_node_ports(new);
            let mut asked_here = HashSet::new();
            for (i, p) in port_list(new).iter().enumerate() {
                match service::node_port(p) {
                    Some(np) if !held.contains(&np) && asked_here.insert(np) => {
                        self.claim_requested(i, np).await?
                    }
                    Some(_) => {}
                    None if allocate => {
                        let np = self.claim_any().await?;
                        set_node_port(new, i, np);
                    }
                    None => {}
                }
            }
        }
        let kept = service::node_ports(new);
        let mut freed: Vec<i64> = held.difference(&kept).copied().collect();
        match (
            service::needs_health_check(old),
            service::needs_health_check(new),
        ) {
            (false, true) => self.claim_health_check(new).await?,
            (true, false) => freed.extend(service::health_check_node_port(old)),
            _ => {}
        }
        Ok(freed)
    }

    /// kube's `allocHealthCheckNodePort`, with its (internal) errors.
    async fn claim_health_check(&mut self, svc: &mut Value) -> ApiResult<()> {
        let internal = |why: Refused, what: String| match why {
            Refused::Store(e) => ApiError::from(e),
            why => ApiError::internal(format!("{what}: {why}")),
        };
        match service::health_check_node_port(svc) {
            Some(hc) => self.claim(hc).await.map_err(|why| {
                internal(
                    why,
                    format!("failed to allocate requested HealthCheck NodePort {hc}"),
                )
            }),
            None => {
                let hc = self.claim_next().await.map_err(|why| {
                    internal(why, "failed to allocate a HealthCheck NodePort 0".into())
                })?;
                svc["spec"]["healthCheckNodePort"] = json!(hc);
                Ok(())
            }
        }
    }
}

fn port_list(svc: &Value) -> Vec<Value> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn set_node_port(svc: &mut Value, i: usize, np: i64) {
    if let Some(p) = svc.pointer_mut(&format!("/spec/ports/{i}")) {
        p["nodePort"] = json!(np);
    }
}
