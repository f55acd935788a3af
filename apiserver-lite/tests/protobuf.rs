//! Protobuf responses over HTTPS from the real server, for a client that sends client-go's default
//! `Accept: application/vnd.kubernetes.protobuf,application/json`: get, list, create and watch of
//! ConfigMaps and pods come back as protobuf whose decoding equals the JSON answer for the same object; a
//! watch of a kind whose table is not declared complete streams JSON. `protoc --decode_raw` checks the
//! envelope with an independent decoder.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Server, path_str};
use serde_json::Value;
use skiff_apiserver::protobuf::decode_known;

const PB: &str = "application/vnd.kubernetes.protobuf,application/json";

/// The admin client certificate, key and CA of the kubeconfig, as files for curl.
fn credentials(s: &Server) -> (PathBuf, PathBuf, PathBuf) {
    use base64::Engine as _;
    let kc = std::fs::read_to_string(&s.kubeconfig).expect("kubeconfig");
    let field = |name: &str| -> Vec<u8> {
        let line = kc
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
            .expect("kubeconfig field");
        let v = line.trim().trim_matches('"');
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .expect("base64")
    };
    let dir = s.dir.path();
    let paths = (dir.join("c.pem"), dir.join("k.pem"), dir.join("ca.pem"));
    std::fs::write(&paths.0, field("client-certificate-data")).expect("write");
    std::fs::write(&paths.1, field("client-key-data")).expect("write");
    std::fs::write(&paths.2, field("certificate-authority-data")).expect("write");
    paths
}

struct Reply {
    code: u16,
    content_type: String,
    body: Vec<u8>,
}

fn curl(s: &Server, method: &str, path: &str, accept: &str, data: Option<&str>) -> Reply {
    let (cert, key, ca) = credentials(s);
    let dir = s.dir.path();
    let (headers, body) = (dir.join("headers"), dir.join("body"));
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "10", "-X", method])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--cacert")
        .arg(&ca)
        .args(["-H", &format!("Accept: {accept}")])
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"]);
    if let Some(d) = data {
        c.args(["-H", "Content-Type: application/json", "--data-binary", d]);
    }
    let out = c.arg(s.url(path)).output().expect("curl");
    Reply {
        code: String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0),
        content_type: content_type(&headers),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn content_type(headers: &Path) -> String {
    std::fs::read_to_string(headers)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).expect("JSON body")
}

fn protoc_decode_raw(bytes: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("protoc")
        .arg("--decode_raw")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("protoc");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out: Output = child.wait_with_output().expect("protoc");
    assert!(out.status.success(), "protoc could not parse the body");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Read a varint at `*pos`.
fn varint(b: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// Length-prefixed WatchEvent frames → (type, decoded object).
fn watch_events(stream: &[u8]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= stream.len() {
        let len = u32::from_be_bytes([stream[at], stream[at + 1], stream[at + 2], stream[at + 3]])
            as usize;
        let event = &stream[at + 4..at + 4 + len];
        at += 4 + len;
        let (mut ty, mut object) = (String::new(), Value::Null);
        let mut pos = 0;
        while pos < event.len() {
            let tag = varint(event, &mut pos);
            let n = varint(event, &mut pos);
            let payload = &event[pos..pos + n];
            pos += n;
            match tag {
                0x0a => ty = String::from_utf8_lossy(payload).into_owned(),
                0x12 => {
                    // RawExtension{raw = 1}
                    let mut p = 0;
                    assert_eq!(varint(payload, &mut p), 0x0a);
                    let m = varint(payload, &mut p);
                    object = decode_known(&payload[p..p + m]).expect("watch object decodes");
                }
                _ => panic!("unexpected WatchEvent field tag {tag}"),
            }
        }
        out.push((ty, object));
    }
    out
}

#[test]
fn protobuf_get_list_create_watch_and_json_fallback() {
    let s = Server::start();
    s.ok(&[
        "create",
        "configmap",
        "cm",
        "--from-literal=k=v",
        "--from-literal=multi=a\nb",
    ]);
    let path = "/api/v1/namespaces/default/configmaps/cm";

    // get: protobuf equal to the JSON answer.
    let pb = curl(&s, "GET", path, PB, None);
    assert_eq!(pb.code, 200);
    assert_eq!(pb.content_type, "application/vnd.kubernetes.protobuf");
    assert!(pb.body.starts_with(b"k8s\x00"));
    let plain = curl(&s, "GET", path, "application/json", None);
    assert_eq!(plain.content_type, "application/json");
    assert_eq!(
        decode_known(&pb.body).expect("decodes"),
        json(&plain),
        "protobuf and JSON answers differ"
    );
    let raw = protoc_decode_raw(&pb.body[4..]);
    assert!(
        raw.starts_with("1 {\n  1: \"v1\"\n  2: \"ConfigMap\"\n}\n2 {\n  1 {\n    1: \"cm\"\n    3: \"default\"\n"),
        "{raw}"
    );

    // list
    let pb = curl(&s, "GET", "/api/v1/namespaces/default/configmaps", PB, None);
    assert_eq!(pb.content_type, "application/vnd.kubernetes.protobuf");
    let list = decode_known(&pb.body).expect("list decodes");
    assert_eq!(list["kind"], "ConfigMapList");
    let plain = json(&curl(
        &s,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        None,
    ));
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["metadata"]["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&list), names(&plain));
    assert!(names(&list).contains(&"cm".to_string()));
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string();

    // watch from the list's revision in another process, then create: protobuf frames.
    let (cert, key, ca) = credentials(&s);
    let watch_out = s.dir.path().join("watch.bin");
    let watch_headers = s.dir.path().join("watch.headers");
    let mut watcher = Command::new("curl")
        .args(["-s", "-N", "--max-time", "6"])
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .arg("--cacert")
        .arg(&ca)
        .args(["-H", &format!("Accept: {PB}")])
        .arg("-D")
        .arg(&watch_headers)
        .arg("-o")
        .arg(&watch_out)
        .arg(s.url(&format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=3"
        )))
        .spawn()
        .expect("curl watch");
    std::thread::sleep(std::time::Duration::from_millis(500));

    // create answered in protobuf
    let created = curl(
        &s,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        PB,
        Some(
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm2"},"data":{"x":"y"}}"#,
        ),
    );
    assert_eq!(created.code, 201);
    assert_eq!(created.content_type, "application/vnd.kubernetes.protobuf");
    let created = decode_known(&created.body).expect("created decodes");
    assert_eq!(created["data"]["x"], "y");
    s.ok(&["delete", "configmap", "cm2"]);

    let status = watcher.wait().expect("curl watch");
    assert!(status.success() || status.code() == Some(28), "{status}");
    assert_eq!(
        content_type(&watch_headers),
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let events = watch_events(&std::fs::read(&watch_out).expect("watch output"));
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|(t, o)| {
            (
                t.clone(),
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ADDED".to_string(), "cm2".to_string()),
            ("DELETED".to_string(), "cm2".to_string())
        ]
    );
    assert_eq!(events[0].1, created);

    // A pod with a security context (once outside the table): protobuf, decoding to the JSON answer.
    let file = s.write(
        "pod.yaml",
        "apiVersion: v1
kind: Pod
metadata: {name: secure}
spec:
  securityContext: {runAsUser: 1000}
  containers: [{name: c, image: busybox}]
",
    );
    s.ok(&["apply", "-f", path_str(&file)]);
    let reply = curl(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods/secure",
        PB,
        None,
    );
    assert_eq!(reply.code, 200);
    assert_eq!(reply.content_type, "application/vnd.kubernetes.protobuf");
    let decoded = decode_known(&reply.body).expect("pod decodes");
    assert_eq!(decoded["spec"]["securityContext"]["runAsUser"], 1000);
    let as_json = curl(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods/secure",
        "application/json",
        None,
    );
    // Protobuf has no null: `lastProbeTime: null` (a zero Time) is simply absent.
    assert_eq!(decoded, without_nulls(json(&as_json)));
    // A watch of a kind without a complete table streams JSON lines.
    let reply = curl(
        &s,
        "GET",
        "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1",
        PB,
        None,
    );
    assert_eq!(reply.content_type, "application/json");
}

fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k, without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// client-go (inside kubectl 1.32) is an independent protobuf decoder: `kubectl create … -o json` sends
/// protobuf, gets the created object back in protobuf (the response headers say so) and prints what it
/// decoded, which must equal the object as a JSON GET returns it.
#[test]
fn client_go_decodes_protobuf_answers() {
    let s = Server::start();
    let cases: [(&[&str], &str); 5] = [
        (
            &["create", "configmap", "c1", "--from-literal=a=b"],
            "configmap/c1",
        ),
        (
            &["create", "secret", "generic", "s1", "--from-literal=a=b"],
            "secret/s1",
        ),
        (&["create", "namespace", "pbns"], "namespace/pbns"),
        (&["create", "serviceaccount", "sa1"], "serviceaccount/sa1"),
        (
            &["create", "role", "r1", "--verb=get,list", "--resource=pods"],
            "role/r1",
        ),
    ];
    for (args, object) in cases {
        let mut create: Vec<&str> = args.to_vec();
        create.extend(["-o", "json", "-v=8"]);
        let out = s.kubectl(&create);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        let response_headers = stderr
            .split_once("Response Headers:")
            .map(|(_, rest)| rest)
            .unwrap_or("");
        assert!(
            response_headers
                .lines()
                .take(8)
                .any(|l| l.contains("Content-Type: application/vnd.kubernetes.protobuf")),
            "{args:?}: the answer was not protobuf:\n{stderr}"
        );
        let decoded: Value = serde_json::from_slice(&out.stdout).expect("kubectl's JSON");
        let got: Value =
            serde_json::from_str(&s.ok(&["get", object, "-o", "json"])).expect("GET JSON");
        assert_eq!(decoded, got, "{object}: client-go decoded something else");
    }
}
