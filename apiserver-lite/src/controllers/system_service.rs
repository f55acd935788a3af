//! What the controllers of the Services the API server itself keeps (`default/kubernetes`,
//! `kube-system/kube-dns`) share: the selector-less Service at a fixed cluster IP, created when it is missing,
//! and the 10 s re-check.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;

/// kube-apiserver's `--endpoint-reconciler` period and its master service check.
const INTERVAL: Duration = Duration::from_secs(10);

/// A ClusterIP Service without a selector at a fixed address.
pub struct SystemService {
    pub namespace: &'static str,
    pub name: &'static str,
    /// The field manager of the writes.
    pub manager: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
    pub ip: Ipv4Addr,
    pub ports: Vec<ServicePort>,
}

/// A named Service port that forwards to `target_port`.
pub fn port(name: &str, port: u16, protocol: &str, target_port: u16) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: i32::from(port),
        protocol: Some(protocol.into()),
        target_port: Some(IntOrString::Int(i32::from(target_port))),
        ..ServicePort::default()
    }
}

impl SystemService {
    /// The Service as it is created.
    pub fn object(&self) -> Value {
        let labels: Map<String, Value> = self
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect();
        let ip = self.ip.to_string();
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": labels},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip,
                "clusterIPs": [ip],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": self.ports,
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
            },
        })
    }

    /// The stored Service; `None` when it was missing and has been created (here, or meanwhile by another
    /// server).
    pub async fn get_or_create(&self, api: &Api) -> ApiResult<Option<Value>> {
        let def = by_kind(Kind::Service);
        match api.get(def, Some(self.namespace), self.name).await {
            Ok(current) => return Ok(Some(current)),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
        // An address reserved by an interrupted create of this Service must not block creating it again.
        let owner = def.key(Some(self.namespace), self.name);
        crate::service_ips::release_if_owned(api.store.as_ref(), self.ip, &owner).await?;
        let opts = super::object::write_opts(self.manager);
        match api
            .create(def, Some(self.namespace), self.object(), &[], &opts)
            .await
        {
            Ok(_) => {
                tracing::info!(namespace = self.namespace, name = self.name, cluster_ip = %self.ip,
                    "created the service");
                Ok(None)
            }
            Err(e) if e.code == 409 => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Ticks at once and then every [`INTERVAL`] until `shutdown` turns true (or its sender is dropped).
pub struct Ticks {
    interval: tokio::time::Interval,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Ticks {
    pub fn new(shutdown: tokio::sync::watch::Receiver<bool>) -> Ticks {
        Ticks {
            interval: tokio::time::interval(INTERVAL),
            shutdown,
        }
    }

    /// Whether to run another pass (false: shut down).
    pub async fn next(&mut self) -> bool {
        while !*self.shutdown.borrow() {
            tokio::select! {
                changed = self.shutdown.changed() => if changed.is_err() { return false },
                _ = self.interval.tick() => return true,
            }
        }
        false
    }
}
