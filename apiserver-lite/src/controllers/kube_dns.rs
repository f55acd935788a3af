//! The cluster DNS Service `kube-system/kube-dns` at `--cluster-dns`, as kubeadm and k3s clusters have it:
//! users see where cluster DNS is, and its address stays reserved. It has no selector and no Endpoints: every
//! agent answers DNS on that address itself, as NodeLocal DNSCache does. Created when missing (checked every
//! 10 s) and otherwise left alone: the Service belongs to the DNS add-on, so edits of its ports or labels are
//! the user's, unlike those of `default/kubernetes`.

use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::Value;

use super::system_service::{self, SystemService, Ticks};
use crate::handlers::Api;
use crate::store::Store;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-dns";
const MANAGER: &str = "skiff-apiserver";

/// The Service as kubeadm's CoreDNS add-on creates it, less the selector and the metrics port.
pub fn service(ip: Ipv4Addr) -> SystemService {
    SystemService {
        namespace: NAMESPACE,
        name: NAME,
        manager: MANAGER,
        labels: &[
            ("k8s-app", "kube-dns"),
            ("kubernetes.io/cluster-service", "true"),
            ("kubernetes.io/name", "KubeDNS"),
        ],
        ip,
        ports: vec![
            system_service::port("dns", 53, "UDP", 53),
            system_service::port("dns-tcp", 53, "TCP", 53),
        ],
    }
}

/// Keep the Service at `ip` until `shutdown` turns true; without an address there is nothing to keep.
pub async fn run(
    store: Arc<dyn Store>,
    service_cidr: ipnet::Ipv4Net,
    ip: Option<Ipv4Addr>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(ip) = ip else {
        tracing::info!("no cluster DNS service (--cluster-dns none)");
        return Ok(());
    };
    let api = Api::new(store).with_service_cidr(service_cidr);
    let service = service(ip);
    // A problem is logged when it shows up, not on every pass.
    let mut told = None;
    let mut ticks = Ticks::new(shutdown);
    while ticks.next().await {
        let problem = ensure(&api, &service).await;
        if problem != told {
            if let Some(problem) = &problem {
                tracing::warn!("{problem}");
            }
            told = problem;
        }
    }
    Ok(())
}

/// Create the Service if it is missing; what stands in its way, if anything.
pub(super) async fn ensure(api: &Api, service: &SystemService) -> Option<String> {
    let current = match service.get_or_create(api).await {
        Ok(current) => current?,
        Err(e) => {
            return Some(format!(
                "failed to create the service {NAMESPACE}/{NAME} at {}: {}",
                service.ip, e.message
            ));
        }
    };
    let theirs = current
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (theirs != service.ip.to_string()).then(|| {
        format!(
            "the service {NAMESPACE}/{NAME} has cluster IP {theirs:?}, not the cluster DNS address {}; \
             leaving it alone",
            service.ip
        )
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_shape() {
        let s = service(Ipv4Addr::new(10, 96, 0, 10)).object();
        assert_eq!(
            s["metadata"],
            json!({"name": "kube-dns", "namespace": "kube-system", "labels": {
                "k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "KubeDNS"}})
        );
        assert_eq!(
            s["spec"],
            json!({
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
            })
        );
    }
}
