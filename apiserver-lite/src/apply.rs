//! Server-side apply and `metadata.managedFields` (FieldsV1), a pragmatic subset of structured-merge-diff:
//!
//! - A field set is a set of paths in FieldsV1 syntax (`f:spec`, `k:{"name":"c"}`, `.`). Maps are walked
//!   field by field; lists of `+listType=map` are walked item by item, each keyed by all its
//!   `+listMapKey`s as kube 1.32's types say ([`crate::patch::meta`]: container ports by
//!   `containerPort` and `protocol`, a missing protocol being `TCP`); every other list and every scalar is
//!   one atomic leaf. Objects of a kind with no known type fall back to keys by field name.
//! - `apply`: the applier's new set is the set of its configuration. A leaf also owned by another manager
//!   whose value would change is a conflict (409 listing every field) unless `force`, which takes the field
//!   over. Fields the applier owned before, no longer applies and nobody else owns are removed. The
//!   configuration is then merged in (strategic merge).
//! - Updates (POST/PUT/non-apply PATCH) give their manager (operation `Update`) every leaf they changed and
//!   take those leaves away from the other managers, without conflicts.
//!
//! Not tracked: status (subresource writes), metadata other than labels and annotations, and set-valued
//! lists (`finalizers`), which are atomic.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::patch::{ListMerge, Schema, key_value, strategic_merge};
use crate::status::ApiError;

/// One path in FieldsV1 syntax.
pub type Path = Vec<String>;
pub type FieldSet = BTreeSet<Path>;

/// The schema server-side apply walks an object with: its kind's type, or field names alone for a kind
/// of no known type.
fn with_schema<T>(obj: &Value, f: impl FnOnce(Schema<'_>) -> T) -> T {
    let kind = obj.get("kind").and_then(Value::as_str);
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let type_name = kind.zip(api_version).map(|(kind, api_version)| {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        crate::patch::meta::type_name(group, version, kind)
    });
    match type_name {
        Some(t) if !crate::patch::meta::fields_of(&t).is_empty() => f(Schema::Apply(&t)),
        _ => f(Schema::ByName),
    }
}

/// `k:{"containerPort":53,"protocol":"UDP"}`: a list item by its keys (sorted by name, as kube writes
/// them); `None` if the item lacks its first key.
fn key_elem(keys: &[&str], item: &Value) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = key_value(item, k) {
            m.insert((*k).to_string(), v);
        }
    }
    keys.first()
        .filter(|k| item.get(**k).is_some())
        .map(|_| format!("k:{}", Value::Object(m)))
}

/// Paths written before list items were keyed by all their keys (`k:{"containerPort":53}` for a list keyed
/// by port and protocol) rewritten with every key, read from the items of `obj` they name; an element that
/// names several items becomes one path for each. Other paths are kept as they are.
fn with_all_keys(set: FieldSet, obj: &Value, schema: Schema<'_>) -> FieldSet {
    fn rewrite(
        rest: &[String],
        value: Option<&Value>,
        schema: Schema<'_>,
        merge: ListMerge,
        prefix: &mut Path,
        out: &mut FieldSet,
    ) {
        let Some((el, rest)) = rest.split_first() else {
            out.insert(prefix.clone());
            return;
        };
        if let Some(f) = el.strip_prefix("f:") {
            let (merge, child) = schema.field(f);
            prefix.push(el.clone());
            rewrite(
                rest,
                value.and_then(|v| v.get(f)),
                child,
                merge,
                prefix,
                out,
            );
            prefix.pop();
            return;
        }
        let key = el
            .strip_prefix("k:")
            .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok());
        if let (Some(key), ListMerge::ByKeys(keys), Some(Value::Array(items))) = (key, merge, value)
            && keys.iter().any(|k| !key.contains_key(*k))
        {
            let matching: Vec<(&Value, String)> = items
                .iter()
                .filter(|it| has_keys(it, &key))
                .filter_map(|it| Some((it, key_elem(keys, it)?)))
                .collect();
            if !matching.is_empty() {
                for (item, elem) in matching {
                    prefix.push(elem);
                    rewrite(rest, Some(item), schema, ListMerge::Replace, prefix, out);
                    prefix.pop();
                }
                return;
            }
        }
        // `k:` of a list walked item by item: the item is the value below.
        let below = match el.strip_prefix("k:") {
            Some(k) => serde_json::from_str::<Map<String, Value>>(k)
                .ok()
                .and_then(|key| value?.as_array()?.iter().find(|it| has_keys(it, &key))),
            None => None,
        };
        prefix.push(el.clone());
        rewrite(rest, below, schema, ListMerge::Replace, prefix, out);
        prefix.pop();
    }
    // Only a one-key element naming the first key of a list with several keys can be old (every write
    // reads its object's managedFields: the walk is skipped when none is).
    let legacy = |el: &String| {
        el.strip_prefix("k:{\"")
            .and_then(|k| k.split_once('"'))
            .is_some_and(|(name, rest)| {
                !rest.contains(',') && crate::patch::meta::first_of_several_keys(name)
            })
    };
    if !set.iter().any(|p| p.iter().any(legacy)) {
        return set;
    }
    let mut out = FieldSet::new();
    for path in &set {
        rewrite(
            path,
            Some(obj),
            schema,
            ListMerge::Replace,
            &mut Path::new(),
            &mut out,
        );
    }
    out
}

/// Whether a list item has the keys of a `k:{…}` path element.
fn has_keys(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter()
        .all(|(k, v)| key_value(item, k).as_ref() == Some(v))
}

fn walk(v: &Value, schema: Schema<'_>, merge: ListMerge, path: &mut Path, out: &mut FieldSet) {
    match (v, merge) {
        (Value::Object(m), _) if !m.is_empty() => {
            for (k, c) in m {
                let (merge, child) = schema.field(k);
                path.push(format!("f:{k}"));
                walk(c, child, merge, path, out);
                path.pop();
            }
        }
        (Value::Array(items), ListMerge::ByKeys(keys)) if !items.is_empty() => {
            for it in items {
                match key_elem(keys, it) {
                    Some(elem) => {
                        path.push(elem);
                        path.push(".".into());
                        out.insert(path.clone());
                        path.pop();
                        walk(it, schema, ListMerge::Replace, path, out);
                        path.pop();
                    }
                    None => {
                        out.insert(path.clone());
                    }
                }
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The fields an object (or an apply configuration) sets: spec-like content plus labels and annotations.
pub fn fields_of(obj: &Value) -> FieldSet {
    with_schema(obj, |schema| fields_with(obj, schema))
}

fn fields_with(obj: &Value, schema: Schema<'_>) -> FieldSet {
    let mut out = FieldSet::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    let mut path: Path;
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for sub in ["labels", "annotations"] {
                    if let Some(Value::Object(x)) = v.get(sub) {
                        for (lk, lv) in x {
                            path = vec!["f:metadata".into(), format!("f:{sub}"), format!("f:{lk}")];
                            walk(lv, Schema::Plain, ListMerge::Replace, &mut path, &mut out);
                        }
                    }
                }
            }
            _ => {
                let (merge, child) = schema.field(k);
                path = vec![format!("f:{k}")];
                walk(v, child, merge, &mut path, &mut out);
            }
        }
    }
    out
}

/// The value at `path` (a trailing `.` names the list item itself).
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for el in path {
        if el == "." {
            return Some(cur);
        }
        if let Some(f) = el.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(k).ok()?;
            cur = cur.as_array()?.iter().find(|it| has_keys(it, &key))?;
        } else {
            return None;
        }
    }
    Some(cur)
}

fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let (last, parent) = if last == "." {
        match parent.split_last() {
            Some((l, p)) => (l, p),
            None => return,
        }
    } else {
        (last, parent)
    };
    let mut cur = obj;
    for el in parent {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = el.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(k) else {
                return;
            };
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|it| has_keys(it, &key)))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(k) = last.strip_prefix("k:")
        && let Ok(key) = serde_json::from_str::<Map<String, Value>>(k)
        && let Some(a) = cur.as_array_mut()
    {
        a.retain(|it| !has_keys(it, &key));
    }
}

/// Encode a field set as a FieldsV1 tree.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Value::Object(Map::new());
    for p in set {
        let mut cur = &mut root;
        for el in p {
            if !cur.is_object() {
                *cur = Value::Object(Map::new());
            }
            cur = match cur {
                Value::Object(m) => m.entry(el.clone()).or_insert_with(|| json!({})),
                _ => return root,
            };
        }
    }
    root
}

/// Decode a FieldsV1 tree into paths (every leaf `{}` is a path).
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn rec(v: &Value, path: &mut Path, out: &mut FieldSet) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, c) in m {
                    path.push(k.clone());
                    rec(c, path, out);
                    path.pop();
                }
            }
            _ => {
                if !path.is_empty() {
                    out.insert(path.clone());
                }
            }
        }
    }
    let mut out = FieldSet::new();
    rec(v, &mut Path::new(), &mut out);
    out
}

/// `.spec.containers[name="c"].image`, as kube-apiserver prints conflicting fields.
pub fn human_path(p: &[String]) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:")
            && let Ok(m) = serde_json::from_str::<Map<String, Value>>(k)
        {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("[{}]", parts.join(",")));
        }
    }
    s
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: FieldSet,
}

fn entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            Some(Entry {
                manager: e.get("manager")?.as_str()?.to_string(),
                operation: e
                    .get("operation")
                    .and_then(Value::as_str)
                    .unwrap_or("Update")
                    .to_string(),
                api_version: e
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                time: e
                    .get("time")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                subresource: e
                    .get("subresource")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                fields: e
                    .get("fieldsV1")
                    .map(|f| {
                        with_schema(obj, |schema| with_all_keys(from_fields_v1(f), obj, schema))
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: &[Entry]) {
    let out: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({"manager": e.manager, "operation": e.operation,
                "apiVersion": e.api_version, "time": e.time, "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields)});
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if out.is_empty() {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
    } else {
        obj["metadata"]["managedFields"] = Value::Array(out);
    }
}

fn upsert(list: &mut Vec<Entry>, manager: &str, operation: &str, api_version: &str) -> usize {
    if let Some(i) = list
        .iter()
        .position(|e| e.manager == manager && e.operation == operation && e.subresource.is_none())
    {
        list[i].time = crate::handlers::now_rfc3339();
        list[i].api_version = api_version.to_string();
        return i;
    }
    list.push(Entry {
        manager: manager.to_string(),
        operation: operation.to_string(),
        api_version: api_version.to_string(),
        time: crate::handlers::now_rfc3339(),
        subresource: None,
        fields: FieldSet::new(),
    });
    list.len() - 1
}

/// Leaves whose value differs between `old` and `new` (present in `new`).
fn changed(old: &Value, new: &Value) -> FieldSet {
    fields_of(new)
        .into_iter()
        .filter(|p| p.last().is_some_and(|l| l != ".") && value_at(old, p) != value_at(new, p))
        .collect()
}

/// Record a non-apply write by `manager`: it owns what it changed (on create: everything it set).
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str) {
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1")
        .to_string();
    let mut list = entries(new);
    let mine = match old {
        None => fields_of(new),
        Some(o) => changed(o, new),
    };
    if mine.is_empty() {
        return;
    }
    for e in list.iter_mut() {
        e.fields.retain(|p| !mine.contains(p));
    }
    let i = upsert(&mut list, manager, "Update", &api_version);
    list[i].fields.extend(mine);
    store_entries(new, &list);
}

/// The managedFields of a newly created object: `manager` (operation `Apply` or `Update`) owns what the
/// client sent (`config`), not the server's defaults.
pub fn record_create(obj: &mut Value, config: &Value, manager: &str, operation: &str) {
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1")
        .to_string();
    let mut list = Vec::new();
    let i = upsert(&mut list, manager, operation, &api_version);
    list[i].fields = fields_of(config);
    store_entries(obj, &list);
}

/// A 409 Conflict listing every conflicting field and its owner.
fn conflict_error(conflicts: &[(String, Path)], api_version: &str) -> ApiError {
    let mut causes = Vec::new();
    let mut lines = Vec::new();
    for (m, p) in conflicts {
        let field = human_path(p);
        causes.push(json!({"reason": "FieldManagerConflict",
            "message": format!("conflict with \"{m}\" using {api_version}"), "field": field}));
        lines.push(format!("- {m}: {field}"));
    }
    let n = conflicts.len();
    let message = if n == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {api_version}: {}",
            conflicts[0].0,
            human_path(&conflicts[0].1)
        )
    } else {
        format!(
            "Apply failed with {n} conflicts: conflicts with {}",
            lines.join("\n")
        )
    };
    let mut e = ApiError::new(409, "Conflict", message);
    e.details = Some(json!({"causes": causes}));
    e
}

/// Server-side apply of `config` by `manager` onto `cur`. Returns the new object (with managedFields).
pub fn apply(cur: &Value, config: &Value, manager: &str, force: bool) -> Result<Value, ApiError> {
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1")
        .to_string();
    let new_set = fields_of(config);
    let mut list = entries(cur);
    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for e in list.iter_mut() {
        if e.manager == manager && e.operation == "Apply" {
            continue;
        }
        let mut taken = Vec::new();
        for p in e.fields.intersection(&new_set) {
            if p.last().is_some_and(|l| l == ".") {
                continue;
            }
            if value_at(cur, p) != value_at(config, p) {
                taken.push(p.clone());
            }
        }
        if force {
            for p in &taken {
                e.fields.remove(p);
            }
        } else {
            conflicts.extend(taken.into_iter().map(|p| (e.manager.clone(), p)));
        }
    }
    if !conflicts.is_empty() {
        return Err(conflict_error(&conflicts, &api_version));
    }
    let old_set = list
        .iter()
        .find(|e| e.manager == manager && e.operation == "Apply")
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut others = FieldSet::new();
    for e in list
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        others.extend(e.fields.iter().cloned());
    }
    let mut result = cur.clone();
    // Deepest paths first so that items go after their fields.
    let mut dropped: Vec<&Path> = old_set
        .iter()
        .filter(|p| !new_set.contains(*p) && !owned_below(&others, p))
        .collect();
    dropped.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in dropped {
        remove_at(&mut result, p);
    }
    let mut cfg = config.clone();
    if let Some(m) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    with_schema(config, |schema| strategic_merge(&mut result, &cfg, schema));
    let i = upsert(&mut list, manager, "Apply", &api_version);
    list[i].fields = new_set;
    store_entries(&mut result, &list);
    Ok(result)
}

/// Whether another manager owns `p` or (for a list item) anything inside it.
fn owned_below(others: &FieldSet, p: &Path) -> bool {
    if others.contains(p) {
        return true;
    }
    if p.last().is_some_and(|l| l == ".") {
        let item = &p[..p.len() - 1];
        return others.iter().any(|o| o.starts_with(item));
    }
    false
}

/// Whether two objects have the same managers owning the same fields (timestamps aside): an apply that
/// changes neither the object nor the ownership is a no-op and writes nothing.
pub fn same_ownership(a: &Value, b: &Value) -> bool {
    let key = |o: &Value| {
        let mut v: Vec<(String, String, Option<String>, FieldSet)> = entries(o)
            .into_iter()
            .filter(|e| !e.fields.is_empty())
            .map(|e| (e.manager, e.operation, e.subresource, e.fields))
            .collect();
        v.sort();
        v
    };
    key(a) == key(b)
}

/// Count of managers per operation (tests and debugging).
pub fn managers(obj: &Value) -> BTreeMap<String, String> {
    entries(obj)
        .into_iter()
        .map(|e| (e.manager, e.operation))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(image: &str, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]}})
    }

    #[test]
    fn fields_v1_round_trip() {
        let f = fields_of(&pod("nginx", json!({"app": "web"})));
        let v = to_fields_v1(&f);
        assert_eq!(v["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert_eq!(
            v["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["."],
            json!({})
        );
        assert_eq!(
            v["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:image"],
            json!({})
        );
        assert_eq!(from_fields_v1(&v), f);
    }

    #[test]
    fn conflicts_force_and_removal() {
        let mut created = pod("nginx", json!({"app": "web"}));
        let cfg = created.clone();
        record_create(&mut created, &cfg, "kubectl-create", "Update");
        // Same values: shared ownership, no conflict.
        let same = apply(&created, &pod("nginx", json!({"app": "web"})), "mgr", false)
            .expect("no conflict");
        assert_eq!(
            managers(&same).get("mgr").map(String::as_str),
            Some("Apply")
        );
        // A different image conflicts with kubectl-create.
        let e =
            apply(&same, &pod("httpd", json!({"app": "web"})), "mgr", false).expect_err("conflict");
        assert_eq!(e.code, 409);
        assert!(
            e.message.contains(
                r#"conflict with "kubectl-create" using v1: .spec.containers[name="c"].image"#
            ),
            "{}",
            e.message
        );
        let forced =
            apply(&same, &pod("httpd", json!({"app": "web"})), "mgr", true).expect("forced");
        assert_eq!(forced["spec"]["containers"][0]["image"], "httpd");
        // mgr adds a label, then stops applying it: the label goes away.
        let with = apply(
            &forced,
            &pod("httpd", json!({"app": "web", "tier": "x"})),
            "mgr",
            false,
        )
        .expect("add");
        assert_eq!(with["metadata"]["labels"]["tier"], "x");
        let without =
            apply(&with, &pod("httpd", json!({"app": "web"})), "mgr", false).expect("remove");
        assert!(without["metadata"]["labels"].get("tier").is_none());
        // app is still co-owned by kubectl-create: it stays even when mgr drops it.
        let dropped = apply(&without, &pod("httpd", json!({})), "mgr", false).expect("drop");
        assert_eq!(dropped["metadata"]["labels"]["app"], "web");
    }

    /// A port is keyed by number and protocol (kube's `+listMapKey`s), so DNS on 53/UDP and 53/TCP are two
    /// items; a missing protocol is TCP. Keyed by number alone, the second apply overwrote the first port.
    #[test]
    fn list_items_are_keyed_by_all_their_keys() {
        let dns = |tcp_name: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dns"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "dns", "ports": [
                    {"containerPort": 53, "protocol": "UDP", "name": "dns"},
                    {"containerPort": 53, "name": tcp_name}]}]}}}})
        };
        let mut created = dns("dns-tcp");
        let cfg = created.clone();
        record_create(&mut created, &cfg, "mgr", "Apply");
        let v = to_fields_v1(&fields_of(&cfg));
        let ports =
            &v["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:ports"];
        assert_eq!(
            ports["k:{\"containerPort\":53,\"protocol\":\"UDP\"}"]["f:name"],
            json!({})
        );
        assert_eq!(
            ports["k:{\"containerPort\":53,\"protocol\":\"TCP\"}"]["f:name"],
            json!({})
        );
        let renamed = apply(&created, &dns("dns-tcp2"), "mgr", false).expect("apply");
        assert_eq!(
            renamed["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 53, "protocol": "UDP", "name": "dns"},
                {"containerPort": 53, "name": "dns-tcp2"}])
        );
        // managedFields written when ports were keyed by number alone: the old path names both items and
        // reads as one path for each.
        let mut legacy = renamed.clone();
        let port_key = |number: u16| format!("k:{{\"containerPort\":{number}}}");
        let entry = &mut legacy["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:template"]
            ["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
        entry["f:ports"] = json!({ port_key(53): {".": {}, "f:name": {}} });
        let read = &entries(&legacy)[0].fields;
        let named: Vec<String> = read
            .iter()
            .filter(|p| p.last().is_some_and(|l| l == "f:name") && p.len() > 2)
            .filter(|p| p[p.len() - 3] == "f:ports")
            .map(|p| p[p.len() - 2].clone())
            .collect();
        assert_eq!(
            named,
            [
                r#"k:{"containerPort":53,"protocol":"TCP"}"#,
                r#"k:{"containerPort":53,"protocol":"UDP"}"#
            ]
        );
        // An item the applier no longer has goes; the other stays.
        let mut udp_only = dns("x");
        udp_only["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array_mut()
            .expect("ports")
            .pop();
        let trimmed = apply(&renamed, &udp_only, "mgr", false).expect("apply");
        assert_eq!(
            trimmed["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 53, "protocol": "UDP", "name": "dns"}])
        );
    }

    #[test]
    fn updates_take_ownership() {
        let mut a = pod("nginx", json!({"app": "web"}));
        let cfg = a.clone();
        record_create(&mut a, &cfg, "mgr", "Apply");
        let mut b = a.clone();
        b["spec"]["containers"][0]["image"] = json!("httpd");
        record_update(Some(&a), &mut b, "kubectl-edit");
        let m = managers(&b);
        assert_eq!(m.get("kubectl-edit").map(String::as_str), Some("Update"));
        let e = apply(&b, &pod("nginx", json!({"app": "web"})), "mgr", false)
            .expect_err("conflict with the editor");
        assert!(e.message.contains("kubectl-edit"));
    }
}
