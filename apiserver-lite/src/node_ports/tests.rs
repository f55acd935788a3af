use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::store::etcd::EtcdStore;
use crate::store::redb::RedbStore;

fn redb() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(&dir.path().join("s.redb")).expect("store");
    (dir, Arc::new(store))
}

fn range(text: &str) -> PortRange {
    text.parse().expect("range")
}

/// A defaulted Service `name` with `spec`.
fn svc(name: &str, spec: Value) -> Value {
    let mut s = json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec});
    service::defaults(&mut s);
    s
}

fn node_port_svc(name: &str, ports: Value) -> Value {
    svc(name, json!({"type": "NodePort", "ports": ports}))
}

fn owner(s: &Value) -> String {
    format!(
        "/registry/services/default/{}",
        s["metadata"]["name"].as_str().unwrap_or("")
    )
}

async fn create(store: &dyn Store, r: PortRange, s: &mut Value) -> ApiResult<()> {
    let key = owner(s);
    allocate(store, r, &key, None, s).await.map(|_| ())
}

fn node_ports_of(s: &Value) -> Vec<Option<i64>> {
    s["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(service::node_port)
        .collect()
}

async fn held(store: &dyn Store) -> BTreeSet<u16> {
    let (kvs, _) = store
        .list("/registry/servicenodeports/")
        .await
        .expect("list");
    kvs.iter()
        .filter_map(|kv| kv.key.rsplit('/').next()?.parse().ok())
        .collect()
}

#[test]
fn ranges_parse_like_kube_apiserver() {
    assert_eq!(PortRange::default(), range("30000-32767"));
    assert_eq!(range("30000+2767"), range("30000-32767"));
    assert_eq!(range("30080").to_string(), "30080-30080");
    assert_eq!(range(" 30000 - 30002").to_string(), "30000-30002");
    for (bad, why) in [
        ("32767-30000", "end port cannot be less than start port"),
        ("0-100", "ports must be between 1 and 65535"),
        ("30000-70000", "ports must be between 1 and 65535"),
        ("65000+1000", "ports must be between 1 and 65535"),
        ("a-b", "expected FIRST-LAST"),
        ("1-2+3", "unable to parse port range"),
        ("", "expected FIRST-LAST"),
    ] {
        let e = bad.parse::<PortRange>().expect_err(bad);
        assert!(e.contains(why), "{bad}: {e}");
    }
}

#[test]
fn free_ports_are_looked_for_in_the_upper_band_first() {
    // 1000 ports: the lower 31 (1000/32) are tried last.
    let order: Vec<u16> = range("30000-30999").scan().collect();
    assert_eq!(order.len(), 1000);
    assert!(order[..969].iter().all(|p| *p >= 30031), "{order:?}");
    assert!(order[969..].iter().all(|p| *p < 30031), "{order:?}");
    assert_eq!(order.iter().collect::<BTreeSet<_>>().len(), 1000);
    let bands: Vec<u64> = [16, 17, 100, 1000, 2768, 65535].map(lower_band).to_vec();
    assert_eq!(bands, [0, 16, 16, 31, 86, 128]);
    assert_eq!(range("30000-30015").scan().count(), 16);
}

#[tokio::test]
async fn creates_allocate_in_range_with_kube_errors() {
    let (_dir, store) = redb();
    let store = store.as_ref();
    let r = PortRange::default();
    let mut web = node_port_svc("web", json!([{"port": 80}]));
    create(store, r, &mut web).await.expect("allocate");
    let [Some(np)] = node_ports_of(&web)[..] else {
        panic!("no node port: {web}");
    };
    assert!(r.contains(np));
    assert_eq!(held(store).await, BTreeSet::from([np as u16]));

    let mut fixed = node_port_svc("fixed", json!([{"port": 80, "nodePort": 30080}]));
    create(store, r, &mut fixed).await.expect("requested");
    let mut again = node_port_svc(
        "again",
        json!([{"port": 81},
        {"name": "b", "port": 80, "nodePort": 30080}]),
    );
    again["spec"]["ports"][0]["name"] = json!("a");
    let e = create(store, r, &mut again).await.expect_err("taken");
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Service \"again\" is invalid: spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    // The port allocated for ports[0] before the refusal went back.
    assert_eq!(held(store).await.len(), 2);
    let mut low = node_port_svc("low", json!([{"port": 80, "nodePort": 80}]));
    let e = create(store, r, &mut low).await.expect_err("range");
    assert_eq!(
        e.message,
        "Service \"low\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );

    // A ClusterIP Service and a LoadBalancer that allocates none get nothing.
    let mut cip = svc("cip", json!({"ports": [{"port": 80}]}));
    create(store, r, &mut cip).await.expect("cluster ip");
    let mut lb = svc(
        "lb",
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
        "ports": [{"port": 80}, {"name": "x", "port": 81, "nodePort": 30081}]}),
    );
    lb["spec"]["ports"][0]["name"] = json!("w");
    create(store, r, &mut lb).await.expect("lb");
    assert_eq!(node_ports_of(&cip), [None]);
    assert_eq!(node_ports_of(&lb), [None, Some(30081)]);

    release(store, &owner(&fixed), &fixed).await;
    release(store, &owner(&lb), &lb).await;
    assert_eq!(held(store).await, BTreeSet::from([np as u16]));
}

#[tokio::test]
async fn one_node_port_per_number_shared_only_by_one_port_number() {
    let (_dir, store) = redb();
    let store = store.as_ref();
    let r = PortRange::default();
    let mut dns = node_port_svc(
        "dns",
        json!([
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
        {"name": "metrics", "port": 9153, "protocol": "TCP"}]),
    );
    create(store, r, &mut dns).await.expect("allocate");
    let got = node_ports_of(&dns);
    assert_eq!(got[0], got[1], "{dns}");
    assert_ne!(got[0], got[2]);
    assert_eq!(held(store).await.len(), 2);
    // The number asked for by a later port of the same number is the one both get.
    let mut asked = node_port_svc(
        "asked",
        json!([
        {"name": "u", "port": 53, "protocol": "UDP"},
        {"name": "t", "port": 53, "protocol": "TCP", "nodePort": 30053}]),
    );
    create(store, r, &mut asked).await.expect("allocate");
    assert_eq!(node_ports_of(&asked), [Some(30053), Some(30053)]);
    // Two port numbers on one node port (validation allows it across protocols): the second is refused.
    let mut split = node_port_svc(
        "split",
        json!([
        {"name": "u", "port": 53, "protocol": "UDP", "nodePort": 30054},
        {"name": "t", "port": 54, "protocol": "TCP", "nodePort": 30054}]),
    );
    let e = create(store, r, &mut split)
        .await
        .expect_err("two port numbers");
    assert!(e.message.ends_with(
        "spec.ports[1].nodePort: Invalid value: 30054: provided port is already allocated"
    ));
}

#[tokio::test]
async fn a_full_range_is_an_internal_error() {
    let (_dir, store) = redb();
    let store = store.as_ref();
    let r = range("30000-30002");
    let mut a = node_port_svc(
        "a",
        json!([{"name": "a", "port": 1},
        {"name": "b", "port": 2}, {"name": "c", "port": 3}]),
    );
    create(store, r, &mut a).await.expect("three");
    let mut more = node_port_svc("more", json!([{"port": 1}]));
    let e = create(store, r, &mut more).await.expect_err("full");
    assert_eq!((e.code, e.reason), (500, "InternalError"));
    assert_eq!(
        e.message,
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );
}

#[tokio::test]
async fn updates_keep_allocate_and_free() {
    let (_dir, store) = redb();
    let store = store.as_ref();
    let r = PortRange::default();
    let mut old = node_port_svc(
        "web",
        json!([
        {"name": "http", "port": 80, "nodePort": 30080},
        {"name": "https", "port": 443, "nodePort": 30443}]),
    );
    create(store, r, &mut old).await.expect("create");
    let key = owner(&old);
    // https dropped, http kept, metrics new (allocated), admin asks for a number.
    let mut new = node_port_svc(
        "web",
        json!([
        {"name": "http", "port": 80, "nodePort": 30080}, {"name": "metrics", "port": 9090},
        {"name": "admin", "port": 8080, "nodePort": 30880}]),
    );
    let done = allocate(store, r, &key, Some(&old), &mut new)
        .await
        .expect("update");
    let metrics = service::node_port(&new["spec"]["ports"][1]).expect("allocated") as u16;
    // Until the write is done, the freed port is still held.
    assert_eq!(
        held(store).await,
        BTreeSet::from([30080, 30443, 30880, metrics])
    );
    let mut retry = new.clone();
    done.revert(store).await;
    assert_eq!(held(store).await, BTreeSet::from([30080, 30443]));
    let done = allocate(store, r, &key, Some(&old), &mut retry)
        .await
        .expect("update");
    done.commit(store).await;
    assert_eq!(held(store).await, BTreeSet::from([30080, 30880, metrics]));

    // To ClusterIP (node ports dropped by the update rules): everything is freed.
    let mut cip = retry.clone();
    cip["spec"]["type"] = json!("ClusterIP");
    service::drop_type_dependent(&retry, &mut cip);
    allocate(store, r, &key, Some(&retry), &mut cip)
        .await
        .expect("to cluster ip")
        .commit(store)
        .await;
    assert!(held(store).await.is_empty());
    // And back: every port gets one again.
    let mut back = cip.clone();
    back["spec"]["type"] = json!("NodePort");
    allocate(store, r, &key, Some(&cip), &mut back)
        .await
        .expect("to node port")
        .commit(store)
        .await;
    assert_eq!(held(store).await.len(), 3);
    assert!(node_ports_of(&back).iter().all(Option::is_some));
}

#[tokio::test]
async fn health_check_node_ports_follow_local_load_balancers() {
    let (_dir, store) = redb();
    let store = store.as_ref();
    let r = PortRange::default();
    let mut lb = svc(
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"port": 80}]}),
    );
    create(store, r, &mut lb).await.expect("create");
    let hc = service::health_check_node_port(&lb).expect("health check port");
    assert!(held(store).await.contains(&(hc as u16)));
    let mut taken = svc(
        "taken",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "healthCheckNodePort": hc, "ports": [{"port": 80}]}),
    );
    let e = create(store, r, &mut taken).await.expect_err("taken");
    assert_eq!(
        e.message,
        format!(
            "Internal error occurred: failed to allocate requested HealthCheck NodePort {hc}: provided port is already allocated"
        )
    );
    let mut cluster = lb.clone();
    cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
    service::drop_type_dependent(&lb, &mut cluster);
    allocate(store, r, &owner(&lb), Some(&lb), &mut cluster)
        .await
        .expect("to Cluster")
        .commit(store)
        .await;
    assert!(!held(store).await.contains(&(hc as u16)));
    release(store, &owner(&cluster), &cluster).await;
    assert!(held(store).await.is_empty());
}

/// Services created at once never share a port, and each requested port goes to exactly one of them.
async fn concurrent_creates(store: Arc<dyn Store>) {
    let r = range("30000-30019");
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let ports = match i % 3 {
                    0 => json!([{"port": 80, "nodePort": 30000 + i / 3}]),
                    _ => json!([{"port": 80}]),
                };
                let mut s = node_port_svc(&format!("s{i}"), ports);
                create(store.as_ref(), r, &mut s)
                    .await
                    .map(|()| node_ports_of(&s)[0])
            })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        if let Ok(np) = t.await.expect("task") {
            got.push(np.expect("node port"));
        }
    }
    let unique: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "{got:?}");
    assert!(got.len() <= 20 && got.len() >= 16, "{got:?}");
    assert_eq!(held(store.as_ref()).await.len(), got.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_on_redb() {
    let (_dir, store) = redb();
    concurrent_creates(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_on_etcd() {
    let etcd = crate::store::etcd::tests::start_etcd().await;
    let store = EtcdStore::connect(std::slice::from_ref(&etcd.url), "/skiff")
        .await
        .expect("connect");
    concurrent_creates(Arc::new(store)).await;
}
