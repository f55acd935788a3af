//! Service environment variables, as the kubelet sets them: for the `kubernetes` Service of `default`
//! always, and for every Service of the pod's namespace unless `enableServiceLinks: false` (a Service of the
//! pod's namespace wins over `default/kubernetes` of the same name). Services without a cluster IP
//! (headless, ExternalName) give nothing. For a Service `my-svc` at 10.96.0.7 with port `http` 80/TCP:
//!
//! ```text
//! MY_SVC_SERVICE_HOST=10.96.0.7          MY_SVC_PORT=tcp://10.96.0.7:80
//! MY_SVC_SERVICE_PORT=80                 MY_SVC_PORT_80_TCP=tcp://10.96.0.7:80
//! MY_SVC_SERVICE_PORT_HTTP=80            MY_SVC_PORT_80_TCP_PROTO=tcp
//!                                        MY_SVC_PORT_80_TCP_PORT=80
//!                                        MY_SVC_PORT_80_TCP_ADDR=10.96.0.7
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// The namespace and name of the API server's own Service.
const MASTER: (&str, &str) = ("default", "kubernetes");

fn env_name(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

/// The variables of the Services visible to a pod in `namespace`, services in name order.
pub fn variables<'a>(
    services: impl Iterator<Item = &'a Service>,
    namespace: &str,
    enable_service_links: bool,
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        let (Some(ns), Some(name)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let ip = svc
            .spec
            .as_ref()
            .and_then(|s| s.cluster_ip.as_deref())
            .unwrap_or("");
        if ip.is_empty() || ip == "None" {
            continue;
        }
        if ns == namespace && enable_service_links {
            chosen.insert(name, svc);
        } else if (ns, name) == MASTER {
            chosen.entry(name).or_insert(svc);
        }
    }
    let mut env = Vec::new();
    for (name, svc) in chosen {
        let Some(spec) = svc.spec.as_ref() else {
            continue;
        };
        let ip = spec.cluster_ip.as_deref().unwrap_or_default();
        let prefix = env_name(name);
        let ports = spec.ports.as_deref().unwrap_or_default();
        env.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        if let Some(first) = ports.first() {
            env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        }
        for p in ports {
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                env.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(n)),
                    p.port.to_string(),
                ));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let proto = p.protocol.as_deref().unwrap_or("TCP");
            let lower = proto.to_ascii_lowercase();
            let url = format!("{lower}://{ip}:{}", p.port);
            let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
            if i == 0 {
                env.push((format!("{prefix}_PORT"), url.clone()));
            }
            env.push((port_prefix.clone(), url));
            env.push((format!("{port_prefix}_PROTO"), lower));
            env.push((format!("{port_prefix}_PORT"), p.port.to_string()));
            env.push((format!("{port_prefix}_ADDR"), ip.to_string()));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .expect("service")
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn kubelet_variables() {
        let all = [
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
            ),
            svc(
                "team",
                "my-svc",
                "10.96.0.7",
                json!([
                    {"name": "http", "port": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                ]),
            ),
            svc("team", "headless", "None", json!([{"port": 80}])),
            svc("other", "elsewhere", "10.96.0.9", json!([{"port": 80}])),
        ];
        let env = variables(all.iter(), "team", true);
        assert_eq!(get(&env, "MY_SVC_SERVICE_HOST"), Some("10.96.0.7"));
        assert_eq!(get(&env, "MY_SVC_SERVICE_PORT"), Some("80"));
        assert_eq!(get(&env, "MY_SVC_SERVICE_PORT_HTTP"), Some("80"));
        assert_eq!(get(&env, "MY_SVC_SERVICE_PORT_DNS"), Some("53"));
        assert_eq!(get(&env, "MY_SVC_PORT"), Some("tcp://10.96.0.7:80"));
        assert_eq!(get(&env, "MY_SVC_PORT_53_UDP"), Some("udp://10.96.0.7:53"));
        assert_eq!(get(&env, "MY_SVC_PORT_53_UDP_PROTO"), Some("udp"));
        assert_eq!(get(&env, "MY_SVC_PORT_80_TCP_PORT"), Some("80"));
        assert_eq!(get(&env, "MY_SVC_PORT_80_TCP_ADDR"), Some("10.96.0.7"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert!(
            env.iter()
                .all(|(k, _)| !k.starts_with("HEADLESS") && !k.starts_with("ELSEWHERE"))
        );

        // enableServiceLinks: false keeps only the master service.
        let env = variables(all.iter(), "team", false);
        assert!(
            env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")),
            "{env:?}"
        );
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));

        // A namespace's own `kubernetes` service wins.
        let mut own = all.to_vec();
        own.push(svc(
            "team",
            "kubernetes",
            "10.96.0.50",
            json!([{"port": 8080}]),
        ));
        let env = variables(own.iter(), "team", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.50"));
        let hosts = env
            .iter()
            .filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST")
            .count();
        assert_eq!(hosts, 1);
    }
}
