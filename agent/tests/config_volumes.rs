//! configMap, secret and projected volumes, env from configMaps/secrets and service variables end to end: real kubectl →
//! skiff-apiserver (in this process) → the real `skiff-agent` binary → a private containerd. Pods use the
//! host network and are bound by `spec.nodeName`, so no bridge, CNI or lab state is touched. Needs root.

mod support;

use std::path::Path;
use std::time::Duration;

use support::cluster::{self, Cluster, PodCleanup, Setup, wait_until};

fn manifest(dir: &Path, name: &str, text: String) -> String {
    let p = dir.join(format!("{name}.yaml"));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_and_secrets_in_volumes_and_env() {
    let Cluster {
        ctrd,
        reg,
        dir,
        server,
        data_dir,
        node,
        agent,
        k,
        ..
    } = cluster::start(Setup {
        name: "cfg-vol",
        tag: "cv",
        busybox_dir: "lx-busybox",
        applets: &["sh", "echo", "sleep", "cat", "true", "tty", "stty"],
        cluster_cidr: "10.251.0.0/16",
        service_cidr: "10.252.0.0/16",
        agent_args: cluster::no_agent_args,
    });
    let cleanups: Vec<PodCleanup> = ["reader", "waiter", "vol-waiter"]
        .into_iter()
        .map(|pod| PodCleanup(k.clone(), vec![pod]))
        .collect();

    k.ok(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=greeting=hello-from-cm",
        "--from-literal=color=blue",
    ]);
    k.ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cret",
    ]);
    // A Service of the pod's namespace: its variables are in the container's environment.
    k.ok(&["create", "service", "clusterip", "app-svc", "--tcp=8080:80"]);
    let svc_ip = k.ok(&[
        "get",
        "service",
        "app-svc",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let reader = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: reader, labels: {{app: reader}}}}\nspec:\n  nodeName: {node}\n  \
         hostNetwork: true\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo vol=$(cat /etc/app/greeting); echo item=$(cat /etc/items/c.txt); echo sec=$(cat /etc/creds/password); \
         echo proj=$(cat /etc/proj/pw)/$(cat /etc/proj/name)/$(cat /etc/proj/labels); echo env-pw=$PW; echo env-cm=$CM_color; \
         echo env-mem=$MEM; \
         echo env-svc=$APP_SVC_SERVICE_HOST:$APP_SVC_SERVICE_PORT/$APP_SVC_PORT; echo env-k8s=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; \
         echo tok=$(cut -c1-3 /etc/proj/token); SA=/var/run/secrets/kubernetes.io/serviceaccount; \
         echo sa-ns=$(cat $SA/namespace) sa-ca=$(head -n 1 $SA/ca.crt) sa-tok=$(cut -c1-3 $SA/token); (echo x > /etc/app/new) 2>/dev/null && echo writable || echo readonly; sleep 3600']\n    \
         env:\n    - {{name: PW, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}\n    \
         - {{name: MISSING, valueFrom: {{configMapKeyRef: {{name: nope, key: k, optional: true}}}}}}\n    \
         - {{name: MEM, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}\n    \
         envFrom:\n    - {{prefix: CM_, configMapRef: {{name: app-config}}}}\n    \
         resources: {{limits: {{memory: 64Mi}}}}\n    \
         volumeMounts:\n    - {{name: app, mountPath: /etc/app}}\n    - {{name: items, mountPath: /etc/items}}\n    \
         - {{name: creds, mountPath: /etc/creds}}\n    - {{name: proj, mountPath: /etc/proj}}\n  \
         volumes:\n  - {{name: app, configMap: {{name: app-config}}}}\n  \
         - {{name: items, configMap: {{name: app-config, items: [{{key: color, path: c.txt, mode: 0400}}]}}}}\n  \
         - {{name: creds, secret: {{secretName: creds, defaultMode: 0400}}}}\n  \
         - name: proj\n    projected:\n      sources:\n      - secret: {{name: creds, items: [{{key: password, path: pw}}]}}\n      \
         - downwardAPI: {{items: [{{path: name, fieldRef: {{fieldPath: metadata.name}}}}, {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}]}}\n      \
         - serviceAccountToken: {{path: token}}\n"
    );
    k.ok(&["create", "-f", &manifest(&dir.path, "reader", reader)]);
    // A container whose env names a configMap that does not exist yet, and a pod whose volume does.
    let waiter = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: waiter}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo late=$LATE; sleep 3600']\n    \
         env:\n    - {{name: LATE, valueFrom: {{configMapKeyRef: {{name: late, key: k}}}}}}\n"
    );
    k.ok(&["create", "-f", &manifest(&dir.path, "waiter", waiter)]);
    let vol_waiter = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: vol-waiter}}\nspec:\n  nodeName: {node}\n  hostNetwork: true\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:test\n    \
         command: [sh, -c, 'echo late-vol=$(cat /late/k); sleep 3600']\n    \
         volumeMounts:\n    - {{name: late, mountPath: /late}}\n  volumes:\n  - {{name: late, configMap: {{name: late-vol}}}}\n"
    );
    k.ok(&[
        "create",
        "-f",
        &manifest(&dir.path, "vol-waiter", vol_waiter),
    ]);

    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/reader",
        "--timeout=120s",
    ]);
    let mut logs = String::new();
    wait_until("reader printed everything", Duration::from_secs(20), || {
        logs = k.ok(&["logs", "reader"]);
        logs.contains("readonly") || logs.contains("writable")
    });
    let want_svc = format!("env-svc={svc_ip}:8080/tcp://{svc_ip}:8080");
    for want in [
        "vol=hello-from-cm",
        "item=blue",
        "sec=s3cret",
        "proj=s3cret/reader/app=\"reader\"",
        "env-pw=s3cret",
        "env-cm=blue",
        "env-mem=64",
        want_svc.as_str(),
        // The API server's own Service, at the first address of the service CIDR.
        "env-k8s=10.252.0.1:443",
        // The projected token source, and the kube-api-access volume every pod gets: a JWT, the namespace,
        // the cluster CA.
        "tok=eyJ",
        "sa-ns=default sa-ca=-----BEGIN CERTIFICATE----- sa-tok=eyJ",
        "readonly",
    ] {
        assert!(
            logs.lines().any(|l| l == want),
            "{want:?} in the logs:\n{logs}"
        );
    }

    let waiting = |pod: &str| {
        k.ok(
            &["get", "pod", pod, "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}"],
        )
    };
    let mut st = String::new();
    wait_until(
        "waiter shows CreateContainerConfigError",
        Duration::from_secs(60),
        || {
            st = waiting("waiter");
            st.starts_with("CreateContainerConfigError|")
        },
    );
    assert_eq!(
        st,
        "CreateContainerConfigError|configmap \"late\" not found"
    );
    wait_until(
        "vol-waiter shows CreateContainerConfigError",
        Duration::from_secs(60),
        || {
            st = waiting("vol-waiter");
            st.starts_with("CreateContainerConfigError|")
        },
    );
    assert!(st.contains("configmap \"late-vol\" not found"), "{st}");
    let events = k.ok(&["get", "events", "-o", "json"]);
    assert!(
        events.contains("Error: configmap \\\"late\\\" not found"),
        "an event names the missing configMap: {events}"
    );

    k.ok(&["create", "configmap", "late", "--from-literal=k=arrived"]);
    k.ok(&[
        "create",
        "configmap",
        "late-vol",
        "--from-literal=k=mounted",
    ]);
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/waiter",
        "pod/vol-waiter",
        "--timeout=60s",
    ]);
    wait_until(
        "the late pods print their config",
        Duration::from_secs(20),
        || {
            k.ok(&["logs", "waiter"]).contains("late=arrived")
                && k.ok(&["logs", "vol-waiter"]).contains("late-vol=mounted")
        },
    );

    // An update of the configMap reaches the mounted files (the periodic re-sync, about a minute).
    k.ok(&[
        "patch",
        "configmap",
        "app-config",
        "-p",
        r#"{"data":{"color":"green"}}"#,
    ]);
    wait_until(
        "the configMap update reaches the volume",
        Duration::from_secs(120),
        || {
            k.run(&["exec", "reader", "--", "cat", "/etc/items/c.txt"], None)
                .stdout
                == b"green"
        },
    );

    // The pod's token authenticates as its service account while the pod exists, and not after.
    let token = String::from_utf8_lossy(
        &k.run(
            &[
                "exec",
                "reader",
                "--",
                "cat",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ],
            None,
        )
        .stdout,
    )
    .into_owned();
    assert!(token.starts_with("eyJ"), "{token:?}");
    let server_url = k.ok(&[
        "config",
        "view",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let sa_kc = dir.join("sa.kubeconfig");
    std::fs::write(
        &sa_kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server_url}\n    \
             certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {token}\ncontexts:\n- name: c\n  \
             context: {{cluster: c, user: sa}}\ncurrent-context: c\n",
            data_dir.join("pki").join("ca.crt").display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sa = support::cluster::Kubectl {
        kubeconfig: sa_kc,
        cache: dir.join("sa-cache"),
        log: dir.join("sa-kubectl.log"),
    };
    let who = sa.run(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&who.stdout),
        "system:serviceaccount:default:default",
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );
    k.ok(&["delete", "pod", "reader", "--wait=true", "--timeout=60s"]);
    let who = sa.run(&["auth", "whoami"], None);
    assert!(
        !who.status.success(),
        "a token bound to a deleted pod must be refused"
    );
    assert!(
        String::from_utf8_lossy(&who.stderr).contains("Unauthorized"),
        "{}",
        String::from_utf8_lossy(&who.stderr)
    );

    drop(cleanups);
    drop(agent);
    server.abort();
    drop(ctrd);
    drop(reg);
}
