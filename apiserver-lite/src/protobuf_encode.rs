//! Protobuf responses (`Accept: application/vnd.kubernetes.protobuf`, client-go's default for built-in
//! kinds): the JSON form of an object encoded with the schema table of [`crate::protobuf`] into the
//! `k8s\0` + `runtime.Unknown{typeMeta, raw}` envelope, and watch events as length-prefixed
//! `meta/v1 WatchEvent{type, object: RawExtension{raw}}` frames.
//!
//! An object is encoded only when every field it has is in the schema table: a client must never get a
//! silently shortened object. Anything else (an unknown kind, a field the table lacks) is answered in JSON,
//! which every client that sends this Accept header also accepts (`…protobuf,application/json`).

use serde_json::{Map, Value};

use crate::protobuf::{F, Ty, schema};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
pub const WATCH_CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// `(apiVersion, kind)` pairs answered in protobuf, with the schema message of each.
const KINDS: &[(&str, &str)] = &[
    ("v1", "Pod"),
    ("v1", "Node"),
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "ServiceAccount"),
    ("v1", "Service"),
    ("v1", "Endpoints"),
    ("v1", "Event"),
    ("v1", "Status"),
    ("coordination.k8s.io/v1", "Lease"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
];

/// Kinds whose schema covers every field of the API type, so that any valid object of the kind encodes:
/// a watch of these is streamed in protobuf (a stream cannot fall back to JSON halfway).
const COMPLETE: &[&str] = &[
    "ConfigMap",
    "Secret",
    "Lease",
    "Event",
    "Namespace",
    "Status",
];

/// Whether the Accept header asks for protobuf before (or instead of) JSON, for plain objects.
pub fn accepts(accept: &str) -> bool {
    for part in accept.split(',') {
        let p = part.replace(' ', "").to_ascii_lowercase();
        let mut params = p.split(';');
        let media = params.next().unwrap_or("");
        if params.any(|x| x.starts_with("as=")) {
            // Table or PartialObjectMetadata: JSON only here.
            return false;
        }
        match media {
            "application/vnd.kubernetes.protobuf" => return true,
            "application/json" | "application/yaml" | "*/*" => return false,
            _ => {}
        }
    }
    false
}

/// Whether a watch of `kind` (in `api_version`) can be streamed in protobuf.
pub fn watchable(api_version: &str, kind: &str) -> bool {
    COMPLETE.contains(&kind) && KINDS.contains(&(api_version, kind))
}

/// The full `k8s\0` envelope of an object or a list (`<Kind>List`), or `None` when it cannot be encoded
/// completely.
pub fn encode(obj: &Value) -> Option<Vec<u8>> {
    let api_version = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let raw = encode_raw(api_version, kind, obj)?;
    let mut type_meta = Vec::new();
    put_str(&mut type_meta, 1, api_version);
    put_str(&mut type_meta, 2, kind);
    let mut unknown = Vec::new();
    put_bytes(&mut unknown, 1, &type_meta);
    put_bytes(&mut unknown, 2, &raw);
    // contentEncoding and contentType, empty as kube-apiserver writes them.
    put_bytes(&mut unknown, 3, b"");
    put_bytes(&mut unknown, 4, b"");
    let mut out = b"k8s\x00".to_vec();
    out.extend_from_slice(&unknown);
    Some(out)
}

/// One watch frame: a 4-byte big-endian length, then `WatchEvent{type = 1, object = 2 {raw = 1}}` where
/// `raw` is the object's envelope.
pub fn watch_frame(event_type: &str, obj: &Value) -> Option<Vec<u8>> {
    let object = encode(obj)?;
    let mut raw_ext = Vec::new();
    put_bytes(&mut raw_ext, 1, &object);
    let mut event = Vec::new();
    put_str(&mut event, 1, event_type);
    put_bytes(&mut event, 2, &raw_ext);
    let len = u32::try_from(event.len()).ok()?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&event);
    Some(out)
}

fn encode_raw(api_version: &str, kind: &str, obj: &Value) -> Option<Vec<u8>> {
    if KINDS.contains(&(api_version, kind)) {
        return message(kind, obj.as_object()?, true);
    }
    let item_kind = kind.strip_suffix("List")?;
    if !KINDS.contains(&(api_version, item_kind)) {
        return None;
    }
    let mut out = Vec::new();
    for (k, v) in obj.as_object()? {
        match (k.as_str(), v) {
            ("apiVersion" | "kind", _) | (_, Value::Null) => {}
            ("metadata", Value::Object(m)) => {
                put_bytes(&mut out, 1, &message("ListMeta", m, false)?)
            }
            ("items", Value::Array(items)) => {
                for item in items {
                    put_bytes(&mut out, 2, &message(item_kind, item.as_object()?, true)?);
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Encode `obj` as schema message `name`; `None` when a field is unknown or of the wrong JSON type.
fn message(name: &str, obj: &Map<String, Value>, top: bool) -> Option<Vec<u8>> {
    let sch = schema(name);
    if sch.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    // Fields of inlined (embedded) messages, gathered per inline field.
    let mut inlined: Vec<(&F, Map<String, Value>)> = Vec::new();
    // Encode in field-number order, as Go's marshaller does.
    let mut ordered: Vec<(&F, &Value)> = Vec::new();
    for (key, value) in obj {
        if value.is_null() || (top && (key == "apiVersion" || key == "kind")) {
            continue;
        }
        if let Some(fd) = sch.iter().find(|fd| fd.name == key) {
            ordered.push((fd, value));
            continue;
        }
        let owner = sch.iter().find(|fd| match fd.ty {
            Ty::Inline(m) => schema(m).iter().any(|x| x.name == key),
            _ => false,
        })?;
        match inlined.iter_mut().find(|(fd, _)| fd.num == owner.num) {
            Some((_, m)) => {
                m.insert(key.clone(), value.clone());
            }
            None => {
                let mut m = Map::new();
                m.insert(key.clone(), value.clone());
                inlined.push((owner, m));
            }
        }
    }
    let inlined_values: Vec<(&F, Value)> = inlined
        .into_iter()
        .map(|(fd, m)| (fd, Value::Object(m)))
        .collect();
    let mut all: Vec<(&F, &Value)> = ordered;
    all.extend(inlined_values.iter().map(|(fd, v)| (*fd, v)));
    all.sort_by_key(|(fd, _)| fd.num);
    for (fd, value) in all {
        if fd.rep {
            for item in value.as_array()? {
                field(&mut out, fd, item)?;
            }
        } else {
            field(&mut out, fd, value)?;
        }
    }
    Some(out)
}

fn field(out: &mut Vec<u8>, fd: &F, v: &Value) -> Option<()> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    match fd.ty {
        Ty::Str => put_str(out, fd.num, v.as_str()?),
        Ty::Int => put_varint_field(out, fd.num, v.as_i64()? as u64),
        Ty::Bool | Ty::OptBool => put_varint_field(out, fd.num, u64::from(v.as_bool()?)),
        Ty::Msg(m) | Ty::Inline(m) => put_bytes(out, fd.num, &message(m, v.as_object()?, false)?),
        Ty::Quantity => put_bytes(out, fd.num, &quantity(v)?),
        Ty::Time => put_bytes(out, fd.num, &time(v.as_str()?)?),
        Ty::Bytes => put_bytes(out, fd.num, &b64.decode(v.as_str()?).ok()?),
        Ty::MapStr | Ty::MapQty | Ty::MapBytes | Ty::MapTime | Ty::MapStrList => {
            let mut entries: Vec<(&String, &Value)> = v.as_object()?.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (k, x) in entries {
                let mut entry = Vec::new();
                put_str(&mut entry, 1, k);
                match fd.ty {
                    Ty::MapStr => put_str(&mut entry, 2, x.as_str()?),
                    Ty::MapQty => put_bytes(&mut entry, 2, &quantity(x)?),
                    Ty::MapTime => put_bytes(&mut entry, 2, &time(x.as_str()?)?),
                    Ty::MapStrList => {
                        let mut items = Vec::new();
                        for item in x.as_array()? {
                            put_str(&mut items, 1, item.as_str()?);
                        }
                        put_bytes(&mut entry, 2, &items);
                    }
                    _ => put_bytes(&mut entry, 2, &b64.decode(x.as_str()?).ok()?),
                }
                put_bytes(out, fd.num, &entry);
            }
        }
        Ty::IntOrStr => {
            let mut ios = Vec::new();
            match v {
                Value::Number(n) => {
                    put_varint_field(&mut ios, 1, 0);
                    put_varint_field(&mut ios, 2, n.as_i64()? as u64);
                }
                Value::String(s) => {
                    put_varint_field(&mut ios, 1, 1);
                    put_str(&mut ios, 3, s);
                }
                _ => return None,
            }
            put_bytes(out, fd.num, &ios);
        }
        Ty::Fields => {
            let mut raw = Vec::new();
            put_bytes(&mut raw, 1, &serde_json::to_vec(v).ok()?);
            put_bytes(out, fd.num, &raw);
        }
    }
    Some(())
}

fn quantity(v: &Value) -> Option<Vec<u8>> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let mut out = Vec::new();
    put_str(&mut out, 1, &text);
    Some(out)
}

/// meta/v1 Time and MicroTime: `{seconds = 1, nanos = 2}`.
fn time(text: &str) -> Option<Vec<u8>> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    let mut out = Vec::new();
    put_varint_field(&mut out, 1, ts.as_second() as u64);
    let nanos = ts.subsec_nanosecond();
    if nanos != 0 {
        put_varint_field(&mut out, 2, nanos as i64 as u64);
    }
    Some(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_varint_field(out: &mut Vec<u8>, num: u64, v: u64) {
    put_varint(out, num << 3);
    put_varint(out, v);
}

fn put_bytes(out: &mut Vec<u8>, num: u64, b: &[u8]) {
    put_varint(out, (num << 3) | 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, num: u64, s: &str) {
    put_bytes(out, num, s.as_bytes());
}

#[cfg(test)]
mod pod_tests;
#[cfg(test)]
mod tests;
