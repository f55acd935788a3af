//! `?watch=true`: a chunked stream of `{"type":…,"object":…}` lines.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::handlers::{Api, Query, Repr, decode_for, matches};
use crate::resources::{ResourceDef, table};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};
use crate::store::{StoreError, WatchEvent};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

fn line(ty: &str, object: Value) -> Bytes {
    let mut b = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

struct Renderer {
    def: &'static ResourceDef,
    repr: Repr,
    include: String,
    /// Length-prefixed protobuf WatchEvents instead of JSON lines.
    protobuf: bool,
}

impl Renderer {
    /// One event on the wire; `None` when a protobuf stream meets an object it cannot encode (the stream
    /// then ends, and the client re-watches).
    fn frame(&self, ty: &str, object: Value) -> Option<Bytes> {
        if !self.protobuf {
            return Some(line(ty, object));
        }
        let frame = crate::protobuf_encode::watch_frame(ty, &object).map(Bytes::from);
        if frame.is_none() {
            tracing::warn!(
                kind = self.def.kind,
                "watch object not encodable in protobuf; ending the watch"
            );
        }
        frame
    }
    fn error(&self, e: &ApiError) -> Option<Bytes> {
        self.frame("ERROR", e.status_json())
    }

    fn obj(&self, o: &Value) -> Value {
        match self.repr {
            Repr::Object => o.clone(),
            Repr::PartialMetadata => table::partial_metadata(o),
            Repr::Table => {
                let rv = o
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                table::table(self.def, std::slice::from_ref(o), rv, &self.include, true)
            }
        }
    }
    fn bookmark(&self, rev: i64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rev.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta})
    }
}

fn content_type(repr: Repr, protobuf: bool) -> &'static str {
    match repr {
        Repr::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
        _ if protobuf => crate::protobuf_encode::WATCH_CONTENT_TYPE,
        _ => "application/json",
    }
}

fn stream_response(repr: Repr, protobuf: bool, rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let s = tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
    let mut r = Response::new(Body::from_stream(s));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type(repr, protobuf)),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    r
}

#[allow(clippy::too_many_arguments)]
pub async fn watch(
    api: &Api,
    def: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    repr: Repr,
    labels: LabelSelector,
    fields: FieldSelector,
) -> ApiResult<Response<Body>> {
    watch_with(api, def, ns, q, repr, labels, fields, false).await
}

/// [`watch`], streaming protobuf frames when `protobuf` is set (the client asked for it and the kind is
/// [`crate::protobuf_encode::watchable`]).
#[allow(clippy::too_many_arguments)]
pub async fn watch_with(
    api: &Api,
    def: &'static ResourceDef,
    ns: Option<&str>,
    q: &Query,
    repr: Repr,
    labels: LabelSelector,
    fields: FieldSelector,
    protobuf: bool,
) -> ApiResult<Response<Body>> {
    let rv = q.get("resourceVersion").unwrap_or("");
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial_param = validate_watch_list(q, bookmarks)?;
    let send_initial = send_initial_param == Some(true);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800)
        .min(3600);
    let (initial, start) = if send_initial_param == Some(false) && (rv.is_empty() || rv == "0") {
        // "Start at Most Recent" without the synthetic events.
        (Vec::new(), api.store.current_revision().await?)
    } else if rv.is_empty() || rv == "0" || send_initial {
        let (items, cur) = api.list(def, ns, &labels, &fields).await?;
        if send_initial && !rv.is_empty() && rv != "0" {
            let want: i64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
            if want > cur {
                return Err(ApiError::new(504, "Timeout", "Too large resource version"));
            }
        }
        (items, cur)
    } else {
        let r: i64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?;
        (Vec::new(), r)
    };
    let renderer = Renderer {
        def,
        repr,
        include: q.get("includeObject").unwrap_or("Metadata").to_string(),
        protobuf,
    };
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut stream = match api.store.watch(&def.prefix(ns), start).await {
        Ok(s) => s,
        Err(e @ StoreError::Compacted { .. }) => {
            let err = ApiError::from_store(e, def.group, def.plural, "");
            if let Some(frame) = renderer.error(&err) {
                let _ = tx.try_send(frame);
            }
            drop(tx);
            return Ok(stream_response(repr, protobuf, rx));
        }
        Err(e) => return Err(ApiError::from_store(e, def.group, def.plural, "")),
    };
    let explicit_rv = !(rv.is_empty() || rv == "0");
    tokio::spawn(async move {
        for o in &initial {
            let Some(frame) = renderer.frame("ADDED", renderer.obj(o)) else {
                return;
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        if bookmarks && (send_initial || explicit_rv) {
            let Some(frame) = renderer.frame("BOOKMARK", renderer.bookmark(start, send_initial))
            else {
                return;
            };
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        let mut last = start;
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = &mut deadline => return,
                _ = tick.tick() => {
                    if bookmarks {
                        let Some(frame) = renderer.frame("BOOKMARK", renderer.bookmark(last, false)) else {
                            return;
                        };
                        if tx.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
                ev = stream.next() => {
                    let ev = match ev {
                        None => return,
                        Some(Ok(ev)) => ev,
                        Some(Err(e)) => {
                            let err = ApiError::from_store(e, renderer.def.group, renderer.def.plural, "");
                            if let Some(frame) = renderer.error(&err) {
                                let _ = tx.send(frame).await;
                            }
                            return;
                        }
                    };
                    last = ev.revision();
                    let out = match convert(renderer.def, &ev, &labels, &fields) {
                        Ok(Some((ty, obj))) => renderer.frame(ty, renderer.obj(&obj)),
                        Ok(None) => continue,
                        Err(e) => renderer.error(&e),
                    };
                    let Some(out) = out else { return };
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok(stream_response(repr, protobuf, rx))
}

/// The streaming-list (`sendInitialEvents`) rules of kube-apiserver's ListOptions validation.
fn validate_watch_list(q: &Query, bookmarks: bool) -> ApiResult<Option<bool>> {
    let invalid = |field: &str, v: &str, why: &str| {
        ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            &[crate::status::FieldError::invalid(field, &json!(v), why)],
        )
    };
    let rv_match = q.get("resourceVersionMatch").unwrap_or("");
    let send = match q.get("sendInitialEvents") {
        None | Some("") => None,
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "invalid sendInitialEvents {o:?}"
            )));
        }
    };
    match send {
        Some(_) => {
            if rv_match != "NotOlderThan" {
                return Err(invalid(
                    "resourceVersionMatch",
                    rv_match,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !bookmarks {
                return Err(invalid(
                    "allowWatchBookmarks",
                    "false",
                    "sendInitialEvents requires setting allowWatchBookmarks to true",
                ));
            }
        }
        None if !rv_match.is_empty() => {
            return Err(invalid(
                "resourceVersionMatch",
                rv_match,
                "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
        None => {}
    }
    Ok(send)
}

/// The watch event type (if any) that a store event gives under the selectors.
pub fn convert(
    def: &ResourceDef,
    ev: &WatchEvent,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> ApiResult<Option<(&'static str, Value)>> {
    match ev {
        WatchEvent::Put { kv, prev } => {
            let new = decode_for(def, kv)?;
            let now = matches(def, &new, labels, fields);
            let before = match prev {
                None => None,
                Some(p) => Some(matches(def, &decode_for(def, p)?, labels, fields)),
            };
            Ok(match (before, now) {
                (None, true) | (Some(false), true) => Some(("ADDED", new)),
                (Some(true), true) => Some(("MODIFIED", new)),
                (Some(true), false) => Some(("DELETED", new)),
                _ => None,
            })
        }
        WatchEvent::Delete { kv } => {
            let old = decode_for(def, kv)?;
            Ok(matches(def, &old, labels, fields).then_some(("DELETED", old)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_resource;
    use crate::store::KeyValue;

    fn kv(name: &str, node: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: format!("/registry/pods/default/{name}"),
            value: serde_json::to_vec(&json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"nodeName": node}}))
                .unwrap_or_default(),
            create_revision: 1,
            mod_revision: rev,
        }
    }

    #[test]
    fn selector_transitions() {
        let def = find_resource("", "pods").expect("pods");
        let f = FieldSelector::parse("spec.nodeName=n1", def.field_selectors()).expect("sel");
        let l = LabelSelector::default();
        let put = |new, prev| WatchEvent::Put { kv: new, prev };
        let r = convert(def, &put(kv("a", "n1", 2), None), &l, &f).expect("ok");
        assert_eq!(r.map(|x| x.0), Some("ADDED"));
        let r = convert(def, &put(kv("a", "n1", 3), Some(kv("a", "", 2))), &l, &f).expect("ok");
        assert_eq!(r.map(|x| x.0), Some("ADDED"));
        let r = convert(def, &put(kv("a", "n2", 4), Some(kv("a", "n1", 3))), &l, &f).expect("ok");
        let (ty, obj) = r.expect("some");
        assert_eq!(ty, "DELETED");
        assert_eq!(obj["metadata"]["resourceVersion"], "4");
        let r = convert(def, &put(kv("a", "n1", 5), Some(kv("a", "n1", 4))), &l, &f).expect("ok");
        assert_eq!(r.map(|x| x.0), Some("MODIFIED"));
        let r = convert(def, &put(kv("b", "n2", 6), None), &l, &f).expect("ok");
        assert!(r.is_none());
        let r = convert(
            def,
            &WatchEvent::Delete {
                kv: kv("a", "n1", 7),
            },
            &l,
            &f,
        )
        .expect("ok");
        assert_eq!(r.map(|x| x.0), Some("DELETED"));
    }

    async fn next_line(body: &mut axum::body::BodyDataStream, buf: &mut Vec<u8>) -> Option<Value> {
        loop {
            if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                return serde_json::from_slice(&line).ok();
            }
            match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
                Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
                _ => return None,
            }
        }
    }

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[tokio::test]
    async fn resource_version_semantics_and_expiry() {
        use crate::handlers::{Api, WriteOpts};
        use crate::store::Store;
        use crate::strict::FieldValidation;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = std::sync::Arc::new(
            crate::store::redb::RedbStore::open(&dir.path().join("s.redb")).expect("store"),
        );
        let api = Api::new(store.clone());
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
        let nsdef = find_resource("", "namespaces").expect("ns");
        let opts = WriteOpts {
            dry_run: false,
            field_validation: FieldValidation::Strict,
            field_manager: None,
            apply: false,
        };
        api.create(nsdef, None, ns, &[], &opts).await.expect("ns");
        let def = find_resource("", "pods").expect("pods");
        let pod = |n: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let (a, _) = api
            .create(def, Some("default"), pod("a"), &[], &opts)
            .await
            .expect("a");
        let rv_a: i64 = a["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("rv");
        api.create(def, Some("default"), pod("b"), &[], &opts)
            .await
            .expect("b");

        // rv=0: synthetic ADDED for both, then live changes.
        let r = watch(
            &api,
            def,
            Some("default"),
            &q("watch=true&resourceVersion=0"),
            Repr::Object,
            LabelSelector::default(),
            FieldSelector::default(),
        )
        .await
        .expect("watch");
        let mut body = r.into_body().into_data_stream();
        let mut buf = Vec::new();
        let e1 = next_line(&mut body, &mut buf).await.expect("e1");
        let e2 = next_line(&mut body, &mut buf).await.expect("e2");
        assert_eq!(
            (e1["type"].as_str(), e2["type"].as_str()),
            (Some("ADDED"), Some("ADDED"))
        );
        api.create(def, Some("default"), pod("c"), &[], &opts)
            .await
            .expect("c");
        let e3 = next_line(&mut body, &mut buf).await.expect("e3");
        assert_eq!(e3["type"], "ADDED");
        assert_eq!(e3["object"]["metadata"]["name"], "c");

        // An explicit RV starts exactly there: only b (and c) follow a, no synthetic events; the
        // bookmark comes first when asked for.
        let r = watch(
            &api,
            def,
            Some("default"),
            &q(&format!(
                "watch=1&resourceVersion={rv_a}&allowWatchBookmarks=true"
            )),
            Repr::Table,
            LabelSelector::default(),
            FieldSelector::default(),
        )
        .await
        .expect("watch");
        let mut body = r.into_body().into_data_stream();
        let mut buf = Vec::new();
        let bm = next_line(&mut body, &mut buf).await.expect("bookmark");
        assert_eq!(bm["type"], "BOOKMARK");
        let e = next_line(&mut body, &mut buf).await.expect("b");
        assert_eq!(e["type"], "ADDED");
        assert_eq!(e["object"]["kind"], "Table");
        assert_eq!(e["object"]["rows"][0]["cells"][0], "b");

        // A compacted RV gives an ERROR event with a 410 Expired status.
        let cur = store.current_revision().await.expect("rev");
        store.compact(cur).await.expect("compact");
        let r = watch(
            &api,
            def,
            Some("default"),
            &q(&format!("watch=true&resourceVersion={rv_a}")),
            Repr::Object,
            LabelSelector::default(),
            FieldSelector::default(),
        )
        .await
        .expect("watch");
        let mut body = r.into_body().into_data_stream();
        let mut buf = Vec::new();
        let e = next_line(&mut body, &mut buf).await.expect("error");
        assert_eq!(e["type"], "ERROR");
        assert_eq!(e["object"]["code"], 410);
        assert_eq!(e["object"]["reason"], "Expired");
    }
}
