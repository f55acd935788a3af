//! kubectl 1.32 against the real server: configmaps, secrets, services, endpoints, serviceaccounts and
//! events.k8s.io events; `kind: List` files; paging; deletecollection; server-side apply conflicts.

mod common;

use common::{Server, path_str};

fn kubectl_present() -> bool {
    if common::have("kubectl") {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "kubectl is required in CI"
    );
    false
}

const LIST: &str = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings}
  data: {a: "1", b: "2"}
  binaryData: {c: "AAEC"}
- apiVersion: v1
  kind: Secret
  metadata: {name: creds}
  data: {user: "YWRtaW4="}
  stringData: {password: "sup3r-s3cret-value"}
- apiVersion: v1
  kind: Service
  metadata: {name: web}
  spec:
    selector: {app: web, tier: front}
    ports:
    - {name: http, port: 80, targetPort: 8080}
    - {name: https, port: 443, targetPort: https}
- apiVersion: v1
  kind: Endpoints
  metadata: {name: db}
  subsets:
  - addresses: [{ip: 10.244.0.5}, {ip: 10.244.0.6}]
    ports: [{name: http, port: 8080}]
- apiVersion: v1
  kind: ServiceAccount
  metadata: {name: robot}
- apiVersion: events.k8s.io/v1
  kind: Event
  metadata: {name: web.1}
  eventTime: "2026-01-01T00:00:00.000000Z"
  reportingController: skiff.io/test
  reportingInstance: test-1
  action: Testing
  reason: Tested
  type: Normal
  note: the new events API works
  regarding: {kind: Service, name: web, namespace: default}
"#;

fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn new_kinds_from_a_list_file_with_tables() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let f = s.write("list.yaml", LIST);
    let out = s.ok(&["create", "-f", path_str(&f)]);
    for what in [
        "configmap/settings created",
        "secret/creds created",
        "service/web created",
        "endpoints/db created",
        "serviceaccount/robot created",
        "event.events.k8s.io/web.1 created",
    ] {
        assert!(out.contains(what), "{out}");
    }

    let cm = s.ok(&["get", "configmaps"]);
    assert_eq!(header(&cm), ["NAME", "DATA", "AGE"]);
    // Every namespace also has kube-root-ca.crt (the root CA publisher, maybe not yet), which can widen
    // the NAME column.
    let row = |name: &str| -> Vec<String> {
        cm.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        row("settings").get(1).map(String::as_str),
        Some("3"),
        "{cm}"
    );

    let sec = s.ok(&["get", "secrets"]);
    assert_eq!(header(&sec), ["NAME", "TYPE", "DATA", "AGE"]);
    assert!(sec.contains("creds") && sec.contains("Opaque   2"), "{sec}");
    // stringData is merged into data (base64) and not stored itself.
    let pw = s.ok(&["get", "secret", "creds", "-o", "jsonpath={.data.password}"]);
    assert_eq!(pw, "c3VwM3ItczNjcmV0LXZhbHVl");
    let raw = s.ok(&["get", "secret", "creds", "-o", "json"]);
    assert!(!raw.contains("stringData"), "{raw}");

    let svc = s.ok(&["get", "services", "-o", "wide"]);
    assert_eq!(
        header(&svc),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ]
    );
    assert!(svc.contains("80/TCP,443/TCP"), "{svc}");
    assert!(svc.contains("app=web,tier=front"), "{svc}");
    let ip = s.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let addr: std::net::Ipv4Addr = ip.parse().expect("cluster IP");
    let o = addr.octets();
    assert!(
        o[0] == 10 && (96..112).contains(&o[1]),
        "{ip} not in 10.96.0.0/12"
    );

    // Hand-made (`db`, no selector Service), and the endpoints controller's for `web` (no pods yet).
    let ep = s.ok(&["get", "endpoints"]);
    assert_eq!(header(&ep), ["NAME", "ENDPOINTS", "AGE"]);
    assert!(ep.contains("10.244.0.5:8080,10.244.0.6:8080"), "{ep}");

    let sa = s.ok(&["get", "serviceaccounts"]);
    assert_eq!(header(&sa), ["NAME", "SECRETS", "AGE"]);
    assert!(sa.contains("robot") && sa.contains("default"), "{sa}");

    let ev = s.ok(&["get", "events.v1.events.k8s.io"]);
    assert!(ev.contains("service/web") && ev.contains("Tested"), "{ev}");
    assert!(
        ev.contains("the new events API works"),
        "events.k8s.io columns: {ev}"
    );
    // One storage: the same event through core/v1, converted.
    let core = s.ok(&[
        "get",
        "events.v1.",
        "web.1",
        "-o",
        "jsonpath={.apiVersion} {.involvedObject.name} {.message} {.reportingComponent}",
    ]);
    assert_eq!(core, "v1 web the new events API works skiff.io/test");
    let core_list = s.ok(&["get", "events"]);
    assert!(core_list.contains("service/web"), "{core_list}");

    // The secret's values never reach the log.
    let log = s.log();
    assert!(!log.contains("sup3r-s3cret-value"));
    assert!(!log.contains("c3VwM3ItczNjcmV0LXZhbHVl"));
}

#[test]
fn validation_of_the_new_kinds() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let bad_b64 =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {k: '%%%not-base64'}\n";
    let err = s.fails(&["create", "-f", "-"], Some(bad_b64));
    assert!(
        err.contains("BadRequest") || err.contains("base64"),
        "{err}"
    );
    let bad_ports = "apiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n  ports: [{port: 70000}, {port: 80, protocol: XTP}]\n";
    let err = s.fails(&["create", "-f", "-"], Some(bad_ports));
    assert!(
        err.contains("spec.ports[0].port") && err.contains("spec.ports[1].protocol"),
        "{err}"
    );
    assert!(err.contains("spec.ports[0].name: Required value"), "{err}");
    let bad_key = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad}\ndata: {'a/b': x}\n";
    let err = s.fails(&["create", "-f", "-"], Some(bad_key));
    assert!(err.contains("data[a/b]"), "{err}");
    let outside = "apiVersion: v1\nkind: Service\nmetadata: {name: out}\nspec:\n  clusterIP: 192.168.1.1\n  ports: [{port: 80}]\n";
    let err = s.fails(&["create", "-f", "-"], Some(outside));
    assert!(err.contains("not in the valid range"), "{err}");
    // A requested address is reserved, and given back on delete.
    let fixed = "apiVersion: v1\nkind: Service\nmetadata: {name: fixed}\nspec:\n  clusterIP: 10.96.0.50\n  ports: [{port: 80}]\n";
    let _ = s.kubectl_stdin(&["create", "-f", "-"], Some(fixed));
    let again = fixed.replace("name: fixed", "name: fixed2");
    let err = s.fails(&["create", "-f", "-"], Some(&again));
    assert!(err.contains("already allocated"), "{err}");
    s.ok(&["delete", "service", "fixed"]);
    let out = s.kubectl_stdin(&["create", "-f", "-"], Some(&again));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cluster IP is immutable.
    let err = s.fails(
        &[
            "patch",
            "svc",
            "fixed2",
            "--type=merge",
            "-p",
            r#"{"spec":{"clusterIP":"10.96.0.51"}}"#,
        ],
        None,
    );
    assert!(err.contains("may not change once set"), "{err}");
    // Typed generators send protobuf bodies.
    s.ok(&["create", "configmap", "gen", "--from-literal=k=v"]);
    s.ok(&["create", "secret", "generic", "gen", "--from-literal=pw=x"]);
    s.ok(&["create", "serviceaccount", "gen"]);
    s.ok(&["create", "service", "clusterip", "gen", "--tcp=80:8080"]);
    assert_eq!(
        s.ok(&["get", "secret", "gen", "-o", "jsonpath={.data.pw}"]),
        "eA=="
    );
    assert_eq!(
        s.ok(&[
            "get",
            "svc",
            "gen",
            "-o",
            "jsonpath={.spec.ports[0].port}/{.spec.ports[0].targetPort}"
        ]),
        "80/8080"
    );
    // List items are still validated strictly by the server, one by one.
    let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: okcm}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: badcm}, bogus: 1}\n";
    let err = s.fails(&["create", "-f", "-"], Some(list));
    assert!(err.contains("unknown field \"bogus\""), "{err}");
    assert!(
        s.ok(&["get", "cm", "-o", "name"])
            .contains("configmap/okcm")
    );
    // Every namespace gets a default serviceaccount.
    s.ok(&["create", "namespace", "team"]);
    assert!(s.ok(&["get", "sa", "-n", "team"]).contains("default"));
}

#[test]
fn paging_and_deletecollection() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    for i in 0..7 {
        let app = if i % 2 == 0 { "even" } else { "odd" };
        s.ok(&[
            "create",
            "configmap",
            &format!("cm{i}"),
            "--from-literal=k=v",
        ]);
        s.ok(&[
            "label",
            "configmap",
            &format!("cm{i}"),
            &format!("app={app}"),
        ]);
    }
    let out = s.kubectl(&["get", "configmaps", "--chunk-size=2", "-v=6"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.matches("continue=").count() >= 3,
        "expected continue tokens: {stderr}"
    );
    for i in 0..7 {
        assert!(stdout.contains(&format!("cm{i} ")), "{stdout}");
    }
    s.ok(&["delete", "configmaps", "-l", "app=even"]);
    let left = s.ok(&["get", "configmaps", "-o", "name"]);
    assert_eq!(
        left.lines().filter(|l| l.contains("configmap/cm")).count(),
        3,
        "{left}"
    );
    assert!(!left.contains("cm0") && left.contains("cm1"), "{left}");
}

#[test]
fn server_side_apply_with_managed_fields_and_conflicts() {
    if !kubectl_present() {
        return;
    }
    let s = Server::start();
    let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  labels: {owner: alice, extra: 'yes'}\ndata: {a: '1', b: '2'}\n";
    let f = s.write("v1.yaml", v1);
    assert!(
        s.ok(&[
            "apply",
            "--server-side",
            "--field-manager=alice",
            "-f",
            path_str(&f)
        ])
        .contains("serverside-applied")
    );
    let mf = s.ok(&[
        "get",
        "cm",
        "conf",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[0].manager} {.metadata.managedFields[0].operation}",
    ]);
    assert_eq!(mf, "alice Apply");
    // bob wants a different value of data.a: 409 naming the field and its owner.
    let bob = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf}\ndata: {a: '9'}\n";
    let fb = s.write("bob.yaml", bob);
    let err = s.fails(
        &[
            "apply",
            "--server-side",
            "--field-manager=bob",
            "-f",
            path_str(&fb),
        ],
        None,
    );
    assert!(
        err.contains("conflict with \"alice\"") && err.contains(".data.a"),
        "{err}"
    );
    s.ok(&[
        "apply",
        "--server-side",
        "--field-manager=bob",
        "--force-conflicts",
        "-f",
        path_str(&fb),
    ]);
    assert_eq!(
        s.ok(&["get", "cm", "conf", "-o", "jsonpath={.data.a}"]),
        "9"
    );
    // alice stops applying data.b and the extra label: both are removed; a (now bob's) stays.
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: conf\n  labels: {owner: alice}\ndata: {}\n";
    let f2 = s.write("v2.yaml", v2);
    s.ok(&[
        "apply",
        "--server-side",
        "--field-manager=alice",
        "-f",
        path_str(&f2),
    ]);
    let got = s.ok(&[
        "get",
        "cm",
        "conf",
        "-o",
        "jsonpath={.data.a}|{.data.b}|{.metadata.labels.extra}|{.metadata.labels.owner}",
    ]);
    assert_eq!(got, "9|||alice");
    // A non-apply update takes ownership without conflicts.
    s.ok(&[
        "patch",
        "cm",
        "conf",
        "--type=merge",
        "-p",
        r#"{"data":{"a":"10"}}"#,
    ]);
    let mgrs = s.ok(&[
        "get",
        "cm",
        "conf",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(mgrs.contains("kubectl-patch"), "{mgrs}");
    let err = s.fails(
        &[
            "apply",
            "--server-side",
            "--field-manager=bob",
            "-f",
            path_str(&fb),
        ],
        None,
    );
    assert!(err.contains("kubectl-patch"), "{err}");
}
