//! The rbac.authorization.k8s.io/v1 kinds as served objects: typed schemas, validation and the Table
//! columns kubectl shows (roles: NAME CREATED AT; bindings: NAME ROLE AGE, wide USERS GROUPS SERVICEACCOUNTS).
//! The generic resource machinery (`crate::resources`) calls in here for these four kinds.

use serde_json::{Value, json};

use crate::resources::Kind;
use crate::status::FieldError;

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Round-trip through the k8s-openapi type (unknown fields dropped).
pub fn normalize(kind: Kind, v: &Value) -> Result<Value, String> {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    match kind {
        Kind::Role => rt::<Role>(v),
        Kind::ClusterRole => rt::<ClusterRole>(v),
        Kind::RoleBinding => rt::<RoleBinding>(v),
        Kind::ClusterRoleBinding => rt::<ClusterRoleBinding>(v),
        _ => Err(format!("{kind:?} is not an RBAC kind")),
    }
}

/// RBAC names are path segments (`system:node` is valid), not DNS subdomains.
fn valid_path_segment(name: &str) -> Option<&'static str> {
    if name == "." || name == ".." {
        return Some("may not be '.' or '..'");
    }
    if name.contains('/') {
        return Some("may not contain '/'");
    }
    if name.contains('%') {
        return Some("may not contain '%'");
    }
    None
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    let Some(rules) = obj.get("rules").and_then(Value::as_array) else {
        return;
    };
    for (i, r) in rules.iter().enumerate() {
        let f = |x: &str| format!("rules[{i}].{x}");
        if strings(r.get("verbs")).is_empty() {
            errs.push(FieldError::required(
                f("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = strings(r.get("nonResourceURLs"));
        let groups = strings(r.get("apiGroups"));
        let resources = strings(r.get("resources"));
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    f("nonResourceURLs"),
                    &json!(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            } else if !groups.is_empty() || !resources.is_empty() {
                errs.push(FieldError::invalid(
                    f("nonResourceURLs"),
                    &json!(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if groups.is_empty() {
            errs.push(FieldError::required(
                f("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errs.push(FieldError::required(
                f("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

fn validate_binding(obj: &Value, cluster: bool, errs: &mut Vec<FieldError>) {
    let rr = obj.get("roleRef").cloned().unwrap_or(Value::Null);
    let api_group = rr.get("apiGroup").and_then(Value::as_str).unwrap_or("");
    if api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &json!(api_group),
            &[GROUP],
        ));
    }
    let kind = rr.get("kind").and_then(Value::as_str).unwrap_or("");
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &json!(kind),
            kinds,
        ));
    }
    let name = rr.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else if let Some(why) = valid_path_segment(name) {
        errs.push(FieldError::invalid("roleRef.name", &json!(name), why));
    }
    let subjects = obj
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, s) in subjects.iter().enumerate() {
        let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(format!("subjects[{i}].name"), ""));
        }
        match kind {
            "User" | "Group" => {}
            "ServiceAccount" => {
                let ns = s.get("namespace").and_then(Value::as_str).unwrap_or("");
                if cluster && ns.is_empty() {
                    errs.push(FieldError::required(format!("subjects[{i}].namespace"), ""));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("subjects[{i}].kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// Validation of a new RBAC object, appended to the generic metadata checks in `errs` (whose DNS-subdomain
/// rule for `metadata.name` is replaced by RBAC's path-segment rule). Other kinds are left alone.
pub fn validate(kind: Kind, obj: &Value, errs: &mut Vec<FieldError>) {
    if !is_rbac(kind) {
        return;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !name.is_empty() {
        errs.retain(|e| e.field != "metadata.name");
        if let Some(why) = valid_path_segment(name) {
            errs.push(FieldError::invalid("metadata.name", &json!(name), why));
        }
    }
    match kind {
        Kind::Role => validate_rules(obj, true, errs),
        Kind::ClusterRole => validate_rules(obj, false, errs),
        Kind::RoleBinding => validate_binding(obj, false, errs),
        _ => validate_binding(obj, true, errs),
    }
}

/// Update rules: a binding's roleRef cannot change.
pub fn validate_update(kind: Kind, old: &Value, new: &Value) -> Vec<FieldError> {
    if matches!(kind, Kind::RoleBinding | Kind::ClusterRoleBinding)
        && old.get("roleRef") != new.get("roleRef")
    {
        return vec![FieldError::invalid(
            "roleRef",
            new.get("roleRef").unwrap_or(&Value::Null),
            "cannot change roleRef",
        )];
    }
    Vec::new()
}

pub fn is_rbac(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Role | Kind::ClusterRole | Kind::RoleBinding | Kind::ClusterRoleBinding
    )
}

fn col(name: &str, ty: &str, format: &str, desc: &str, priority: i32) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": desc, "priority": priority})
}

/// Table columns; `name` and `age` are the shared Name and Age column definitions.
pub fn columns(kind: Kind, name: Value, age: Value) -> Vec<Value> {
    match kind {
        Kind::Role | Kind::ClusterRole => vec![
            name,
            col(
                "Created At",
                "date",
                "",
                "CreationTimestamp is a timestamp representing the server time when this object was created.",
                0,
            ),
        ],
        _ => vec![
            name,
            col("Role", "string", "", "RoleRef references a role.", 0),
            age,
            col("Users", "string", "", "Users in the binding.", 1),
            col("Groups", "string", "", "Groups in the binding.", 1),
            col(
                "ServiceAccounts",
                "string",
                "",
                "ServiceAccounts in the binding.",
                1,
            ),
        ],
    }
}

/// Table cells matching [`columns`].
pub fn cells(kind: Kind, obj: &Value, name: String, age: String) -> Vec<Value> {
    match kind {
        Kind::Role | Kind::ClusterRole => vec![
            json!(name),
            json!(
                obj.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            ),
        ],
        _ => {
            let rr = |k: &str| {
                obj.pointer(&format!("/roleRef/{k}"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let subjects = obj
                .get("subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let of = |kind: &str| {
                subjects
                    .iter()
                    .filter(|s| s.get("kind").and_then(Value::as_str) == Some(kind))
                    .map(|s| {
                        let n = s.get("name").and_then(Value::as_str).unwrap_or("");
                        match s.get("namespace").and_then(Value::as_str) {
                            Some(ns) if kind == "ServiceAccount" => format!("{ns}/{n}"),
                            _ => n.to_string(),
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            vec![
                json!(name),
                json!(format!("{}/{}", rr("kind"), rr("name"))),
                json!(age),
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
    }
}
