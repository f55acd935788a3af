//! The `default/kubernetes` Service and its Endpoints, as kube-apiserver's bootstrap controller keeps them:
//! created if missing (and checked again every 10 s), ports corrected, and the Endpoints pointing at this
//! server's advertise address and secure port.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, ServicePort};
use serde_json::json;

use super::system_service::{self, SystemService, Ticks};
use crate::handlers::Api;
use crate::resources::{Kind, by_kind};
use crate::status::ApiResult;
use crate::store::Store;

const NAMESPACE: &str = "default";
const NAME: &str = "kubernetes";
const MANAGER: &str = "kube-apiserver";
/// kube-apiserver keeps its Endpoints out of EndpointSlice mirroring.
const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// Where pods reach this API server.
#[derive(Debug, Clone)]
pub struct Settings {
    pub service_cidr: ipnet::Ipv4Net,
    pub advertise_address: IpAddr,
    pub secure_port: u16,
}

fn desired_ports(secure_port: u16) -> Vec<ServicePort> {
    vec![system_service::port("https", 443, "TCP", secure_port)]
}

/// The Service as kube-apiserver creates it.
pub fn service(settings: &Settings) -> SystemService {
    SystemService {
        namespace: NAMESPACE,
        name: NAME,
        manager: MANAGER,
        labels: &[("component", "apiserver"), ("provider", "kubernetes")],
        ip: crate::service_ips::kubernetes_ip(settings.service_cidr),
        ports: desired_ports(settings.secure_port),
    }
}

/// The subsets of the `kubernetes` Endpoints; `None` when the advertise address cannot be reached from pods.
pub fn endpoints_subsets(settings: &Settings) -> Option<Vec<EndpointSubset>> {
    let ip = settings.advertise_address;
    if ip.is_loopback() || ip.is_unspecified() {
        return None;
    }
    Some(vec![EndpointSubset {
        addresses: Some(vec![EndpointAddress {
            ip: ip.to_string(),
            ..EndpointAddress::default()
        }]),
        not_ready_addresses: None,
        ports: Some(vec![EndpointPort {
            name: Some("https".into()),
            port: i32::from(settings.secure_port),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    }])
}

/// Keep the Service and its Endpoints until `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    settings: Settings,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let api = Api::new(store).with_service_cidr(settings.service_cidr);
    let mut told_loopback = false;
    let mut ticks = Ticks::new(shutdown);
    while ticks.next().await {
        if let Err(e) = ensure_service(&api, &settings).await {
            tracing::warn!(error = %e.message, "failed to ensure the kubernetes service");
        }
        match endpoints_subsets(&settings) {
            Some(subsets) => {
                let labels = BTreeMap::from([(SKIP_MIRROR_LABEL.to_string(), "true".to_string())]);
                match super::endpoints::write(&api, NAMESPACE, NAME, &labels, &subsets).await {
                    Ok(true) => tracing::info!(address = %settings.advertise_address,
                        port = settings.secure_port, "updated the kubernetes endpoints"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e.message, "failed to update the kubernetes endpoints")
                    }
                }
            }
            None => {
                if !told_loopback {
                    tracing::info!(address = %settings.advertise_address,
                        "the advertise address is not reachable from pods; \
                         the kubernetes service gets no endpoints");
                    told_loopback = true;
                }
                // Endpoints left from an earlier, reachable address would send pods to the wrong host.
                if let Err(e) = super::endpoints::delete(&api, NAMESPACE, NAME).await {
                    tracing::warn!(error = %e.message, "failed to delete stale kubernetes endpoints");
                }
            }
        }
    }
    Ok(())
}

/// Create the Service if it is missing; put its ports right if they changed (another secure port).
async fn ensure_service(api: &Api, settings: &Settings) -> ApiResult<()> {
    let Some(current) = service(settings).get_or_create(api).await? else {
        return Ok(());
    };
    let wanted = desired_ports(settings.secure_port);
    let ports: Option<Vec<ServicePort>> = current
        .pointer("/spec/ports")
        .and_then(|p| serde_json::from_value(p.clone()).ok());
    if ports.as_ref() == Some(&wanted) {
        return Ok(());
    }
    let mut next = current;
    next["spec"]["ports"] = json!(wanted);
    let opts = super::object::write_opts(MANAGER);
    api.update(
        by_kind(Kind::Service),
        Some(NAMESPACE),
        NAME,
        None,
        next,
        &[],
        &opts,
    )
    .await?;
    tracing::info!(
        port = settings.secure_port,
        "updated the ports of the kubernetes service"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ip: &str) -> Settings {
        Settings {
            service_cidr: "10.100.0.0/16".parse().expect("cidr"),
            advertise_address: ip.parse().expect("ip"),
            secure_port: 6443,
        }
    }

    #[test]
    fn service_and_endpoints_shape() {
        let s = service(&settings("192.168.1.10")).object();
        assert_eq!(s["spec"]["clusterIP"], "10.100.0.1");
        assert_eq!(s["spec"]["clusterIPs"], json!(["10.100.0.1"]));
        assert_eq!(
            s["spec"]["ports"],
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
        );
        assert!(s["spec"].get("selector").is_none());
        assert_eq!(s["metadata"]["labels"]["provider"], "kubernetes");
        let e = endpoints_subsets(&settings("192.168.1.10")).expect("reachable");
        assert_eq!(
            serde_json::to_value(&e).expect("json"),
            json!([{"addresses": [{"ip": "192.168.1.10"}],
                    "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        assert!(endpoints_subsets(&settings("127.0.0.1")).is_none());
        assert!(endpoints_subsets(&settings("::1")).is_none());
        assert!(endpoints_subsets(&settings("0.0.0.0")).is_none());
    }
}
