//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (the subset of
//! Kubernetes' patch strategies that the served kinds use) and server-side apply (approximated by SMP).

use serde_json::{Map, Value};

pub mod meta;
mod table;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(tm) = target {
        for (k, v) in pm {
            if v.is_null() {
                tm.remove(k);
            } else {
                merge_patch(tm.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(target, &p.0).map_err(|e| e.to_string())
}

/// What a strategic merge patch knows of the value it walks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema<'a> {
    /// A type of the served kinds (`io.k8s.api.core.v1.PodSpec`): lists merge as kube's struct tags say
    /// ([`meta`]).
    Type(&'a str),
    /// A value without metadata (labels, a field newer than the table): lists are replaced.
    Plain,
    /// A type of the served kinds, for server-side apply: lists merge as their `+listType` says (a `map`
    /// by all its `+listMapKey`s, where strategic merge patch uses one merge key).
    Apply(&'a str),
    /// No type: lists merge by the field-name rule of [`merge_key`].
    ByName,
}

impl<'a> Schema<'a> {
    /// How field `name` of a value of this schema merges, and the schema of its value (or items).
    pub(crate) fn field(self, name: &str) -> (ListMerge, Schema<'static>) {
        match self {
            Schema::Type(ty) | Schema::Apply(ty) => {
                let Some(f) = meta::field(ty, name) else {
                    return (ListMerge::Replace, Schema::Plain);
                };
                let apply = matches!(self, Schema::Apply(_));
                let merge = match (apply, f.list_type(), f.merges(), f.merge_key()) {
                    // Server-side apply: `+listType`.
                    (true, "map", _, _) if !f.map_keys().is_empty() => {
                        ListMerge::ByKeys(f.map_keys())
                    }
                    (true, "set", _, _) => ListMerge::Union,
                    (true, ..) => ListMerge::Replace,
                    // Strategic merge patch: `patchStrategy` and `patchMergeKey`.
                    (false, _, true, Some(_)) => ListMerge::ByKeys(std::slice::from_ref(&f.4)),
                    (false, _, true, None) => ListMerge::Union,
                    (false, _, false, _) => ListMerge::Replace,
                };
                let child = match (f.item_type(), apply) {
                    (Some(t), true) => Schema::Apply(t),
                    (Some(t), false) => Schema::Type(t),
                    (None, _) => Schema::Plain,
                };
                (merge, child)
            }
            Schema::Plain => (ListMerge::Replace, Schema::Plain),
            Schema::ByName => {
                let merge = match merge_key(name) {
                    Some(key) => ListMerge::ByKeys(key),
                    None if is_merged_primitive_list(name) => ListMerge::Union,
                    None => ListMerge::Replace,
                };
                (merge, Schema::ByName)
            }
        }
    }
}

/// How a list field takes a patch's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMerge {
    /// Items are matched by these keys; `{"$patch": "delete"}` items remove theirs.
    ByKeys(&'static [&'static str]),
    /// A set of scalars: the patch's items are added.
    Union,
    /// The patch's list replaces the whole list.
    Replace,
}

/// The merge key of a list field by field name alone, for values of no known type.
fn merge_key(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => &["name"],
        "ports" => &["containerPort"],
        "volumeMounts" | "volumeDevices" => &["mountPath"],
        "conditions" | "addresses" | "readinessGates" => &["type"],
        "ownerReferences" => &["uid"],
        "hostAliases" => &["ip"],
        _ => return None,
    })
}

/// Key field `name` of a list item; a port's missing `protocol` is kube's default, `TCP` (server-side
/// apply configurations are not defaulted before their keys are read).
pub(crate) fn key_value(item: &Value, name: &str) -> Option<Value> {
    match item.get(name) {
        Some(v) => Some(v.clone()),
        None if name == "protocol" => Some(Value::from("TCP")),
        None => None,
    }
}

/// Whether two list items have the same keys (the first key must be set).
fn same_keys(a: &Value, b: &Value, keys: &[&str]) -> bool {
    keys.first().is_some_and(|k| a.get(*k).is_some())
        && keys.iter().all(|k| key_value(a, k) == key_value(b, k))
}

/// Lists of scalars whose strategy is `merge` (union).
fn is_merged_primitive_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Strategic merge patch of a value of `schema`: maps merge field by field, lists as their patch strategy
/// says, with the directives `$patch` (`replace`, `delete`), `$retainKeys`, `$setElementOrder/<list>` and
/// `$deleteFromPrimitiveList/<list>`.
pub fn strategic_merge(target: &mut Value, patch: &Value, schema: Schema<'_>) {
    let Value::Object(pm) = patch else {
        *target = patch.clone();
        return;
    };
    if pm.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = pm.clone();
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(tm) = target else { return };
    // $retainKeys: drop keys not listed.
    if let Some(Value::Array(keep)) = pm.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        tm.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (k, v) in pm {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(del)) = (tm.get_mut(field), v) {
                list.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            tm.remove(k);
            continue;
        }
        let (merge, child) = schema.field(k);
        match v {
            Value::Array(items) => {
                let replace = items
                    .iter()
                    .any(|it| it.get("$patch").and_then(Value::as_str) == Some("replace"));
                match (merge, tm.get_mut(k)) {
                    (ListMerge::ByKeys(keys), Some(Value::Array(cur))) if !replace => {
                        merge_list(cur, items, keys, child, schema == Schema::ByName)
                    }
                    (ListMerge::Union, Some(Value::Array(cur))) if !replace => {
                        for it in items {
                            if !cur.contains(it) {
                                cur.push(it.clone());
                            }
                        }
                    }
                    _ => {
                        let cleaned: Vec<Value> = items
                            .iter()
                            .filter(|it| {
                                !matches!(
                                    it.get("$patch").and_then(Value::as_str),
                                    Some("delete" | "replace")
                                )
                            })
                            .map(|it| {
                                let mut c = Value::Null;
                                strategic_merge(&mut c, it, child);
                                if it.is_object() { c } else { it.clone() }
                            })
                            .collect();
                        tm.insert(k.clone(), Value::Array(cleaned));
                    }
                }
                if let (Some(Value::Array(order)), Some(Value::Array(list))) =
                    (pm.get(&format!("$setElementOrder/{k}")), tm.get_mut(k))
                {
                    let keys = match merge {
                        ListMerge::ByKeys(keys) => Some(keys),
                        _ => None,
                    };
                    set_element_order(list, order, keys, schema == Schema::ByName);
                }
            }
            // `{"$patch": "delete"}` removes the whole map.
            Value::Object(o) if o.get("$patch").and_then(Value::as_str) == Some("delete") => {
                tm.remove(k);
            }
            Value::Object(_) => {
                strategic_merge(tm.entry(k.clone()).or_insert(Value::Null), v, child)
            }
            other => {
                tm.insert(k.clone(), other.clone());
            }
        }
    }
    // A list the patch only orders (no items changed).
    for (k, order) in pm {
        let (Some(field), Value::Array(order)) = (k.strip_prefix("$setElementOrder/"), order)
        else {
            continue;
        };
        if pm.contains_key(field) {
            continue;
        }
        if let Some(Value::Array(list)) = tm.get_mut(field) {
            let keys = match schema.field(field).0 {
                ListMerge::ByKeys(keys) => Some(keys),
                _ => None,
            };
            set_element_order(list, order, keys, schema == Schema::ByName);
        }
    }
}

/// `$setElementOrder/<list>`: the items the order names come first, in its order; the others (which only
/// the server has) follow in their current order.
fn set_element_order(list: &mut [Value], order: &[Value], keys: Option<&[&str]>, by_name: bool) {
    let position = |item: &Value| {
        order.iter().position(|o| match keys {
            Some(keys) => same_keys(o, item, &item_keys(item, keys, by_name)),
            None => o == item,
        })
    };
    // The key is a search of `order`: computed once per item, not once per comparison.
    list.sort_by_cached_key(|item| position(item).unwrap_or(usize::MAX));
}

/// The keys of a list item. By field name alone, Service and Endpoints ports are keyed by `port` where
/// container ports are keyed by `containerPort`; typed lists know their keys.
fn item_keys<'k>(item: &Value, keys: &'k [&'k str], by_name: bool) -> Vec<&'k str> {
    if by_name
        && keys == ["containerPort"]
        && item.get("containerPort").is_none()
        && item.get("port").is_some()
    {
        vec!["port"]
    } else {
        keys.to_vec()
    }
}

fn merge_list(
    cur: &mut Vec<Value>,
    items: &[Value],
    keys: &[&str],
    child: Schema<'_>,
    by_name: bool,
) {
    for it in items {
        let keys = item_keys(it, keys, by_name);
        if keys.first().is_none_or(|k| it.get(*k).is_none()) {
            cur.push(it.clone());
            continue;
        }
        let pos = cur.iter().position(|c| same_keys(it, c, &keys));
        let delete = it.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                cur.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut cur[i], it, child),
            (None, false) => {
                let mut c = Value::Null;
                strategic_merge(&mut c, it, child);
                cur.push(c);
            }
        }
    }
}

/// Apply a patch of the given type to `target`, a value of `schema`.
pub fn apply(
    pt: PatchType,
    target: &mut Value,
    patch: &Value,
    schema: Schema<'_>,
) -> Result<(), String> {
    match pt {
        PatchType::Json => json_patch(target, patch),
        PatchType::Merge => {
            if !patch.is_object() {
                return Err("merge patch must be a JSON object".into());
            }
            merge_patch(target, patch);
            Ok(())
        }
        PatchType::Strategic | PatchType::Apply => {
            if !patch.is_object() {
                return Err("strategic merge patch must be a JSON object".into());
            }
            strategic_merge(target, patch, schema);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POD: Schema = Schema::Type("io.k8s.api.core.v1.Pod");

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_containers_by_name() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "x:1", "env": [{"name": "E", "value": "1"}]},
            {"name": "b", "image": "y:1"}
        ]}, "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"containers": [
            {"name": "a", "image": "x:2", "env": [{"name": "F", "value": "2"}]},
            {"name": "b", "$patch": "delete"},
            {"name": "c", "image": "z"}
        ]}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            POD,
        );
        assert_eq!(t["spec"]["containers"][0]["image"], "x:2");
        assert_eq!(
            t["spec"]["containers"][0]["env"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(t["spec"]["containers"][1]["name"], "c");
        assert_eq!(t["spec"]["containers"].as_array().map(Vec::len), Some(2));
        assert_eq!(t["status"]["conditions"][0]["status"], "True");
        assert_eq!(t["status"]["conditions"][1]["type"], "PodScheduled");
    }

    #[test]
    fn strategic_replaces_unkeyed_lists_and_unions_finalizers() {
        let mut t =
            json!({"spec": {"tolerations": [{"key": "a"}]}, "metadata": {"finalizers": ["x"]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"tolerations": [{"key": "b"}]}, "metadata": {"finalizers": ["y"], "$deleteFromPrimitiveList/finalizers": ["x"]}}),
            POD,
        );
        assert_eq!(t["spec"]["tolerations"], json!([{"key": "b"}]));
        assert_eq!(t["metadata"]["finalizers"], json!(["y"]));
    }

    #[test]
    fn strategic_replace_directive_replaces_a_nested_map() {
        // What `kubectl rollout undo` sends for a DaemonSet or StatefulSet: a ControllerRevision's data.
        let mut t = json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "1", "b": "2"}},
            "spec": {"containers": [{"name": "c", "image": "new"}, {"name": "d"}]}}}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"a": "1"}},
                "spec": {"containers": [{"name": "c", "image": "old"}]}}}}),
            Schema::Type("io.k8s.api.apps.v1.DaemonSet"),
        );
        assert_eq!(
            t,
            json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "1"}},
                "spec": {"containers": [{"name": "c", "image": "old"}]}}}})
        );
    }

    /// What kubectl 1.32's client-side apply sends when a container, an env var and a port were removed from
    /// the manifest: deletions as directives, the remaining order in `$setElementOrder`.
    #[test]
    fn strategic_deletes_and_orders_as_kubectl_apply_says() {
        let mut t = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "busybox", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81, "protocol": "TCP"}]},
            {"name": "b", "image": "busybox"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a",
                "$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}],
                "$setElementOrder/ports": [{"containerPort": 80}], "ports": [{"$patch": "delete", "containerPort": 81}]},
                {"$patch": "delete", "name": "b"}]
        }}}});
        strategic_merge(
            &mut t,
            &patch,
            Schema::Type("io.k8s.api.apps.v1.Deployment"),
        );
        assert_eq!(
            t,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "busybox",
                "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}})
        );
        // The order of a keyed list follows `$setElementOrder`, even when no item changed.
        let mut t =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "injected"}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
            POD,
        );
        assert_eq!(
            t["spec"]["containers"],
            json!([{"name": "b"}, {"name": "a"}, {"name": "injected"}])
        );
    }

    /// Lists kube does not merge are replaced, whatever their field is called; lists it merges use the key
    /// of their own type.
    #[test]
    fn strategic_follows_each_types_tags() {
        let mut t = json!({"spec": {"readinessGates": [{"conditionType": "a"}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"readinessGates": [{"conditionType": "b"}]}}),
            POD,
        );
        assert_eq!(t["spec"]["readinessGates"], json!([{"conditionType": "b"}]));
        let mut t = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        strategic_merge(
            &mut t,
            &json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}),
            Schema::Type("io.k8s.api.core.v1.Endpoints"),
        );
        assert_eq!(t, json!({"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]}));
        let mut t = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "$patch": "delete"}]}}),
            Schema::Type("io.k8s.api.core.v1.Service"),
        );
        assert_eq!(
            t["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}])
        );
        // A list replaced by directive, and a list under a field without metadata.
        let mut t = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "metadata": {"labels": {"x": "1"}}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"containers": [{"$patch": "replace"}, {"name": "c"}]}, "metadata": {"labels": {"y": "2"}}}),
            POD,
        );
        assert_eq!(t["spec"]["containers"], json!([{"name": "c"}]));
        assert_eq!(t["metadata"]["labels"], json!({"x": "1", "y": "2"}));
        strategic_merge(
            &mut t,
            &json!({"metadata": {"labels": {"$patch": "delete"}}}),
            POD,
        );
        assert!(t["metadata"].get("labels").is_none(), "{t}");
        // Untyped (server-side apply's merge): by field name, Service ports by `port`.
        let mut t = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"ports": [{"port": 80, "name": "http"}]}}),
            Schema::ByName,
        );
        assert_eq!(
            t["spec"]["ports"],
            json!([{"port": 80, "name": "http"}, {"port": 443}])
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut t = json!({"metadata": {"labels": {"a": "1"}}});
        json_patch(&mut t, &json!([{"op": "add", "path": "/metadata/labels/b", "value": "2"}, {"op": "remove", "path": "/metadata/labels/a"}])).expect("patch");
        assert_eq!(t, json!({"metadata": {"labels": {"b": "2"}}}));
        assert!(
            json_patch(
                &mut t,
                &json!([{"op": "test", "path": "/metadata/labels/b", "value": "3"}])
            )
            .is_err()
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("text/plain"), None);
    }
}
