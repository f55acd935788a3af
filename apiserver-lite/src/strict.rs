//! Field validation (`fieldValidation=Strict|Warn|Ignore`): duplicate JSON keys and fields the schema lacks.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, String> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(o) => Err(format!(
                "fieldValidation must be one of Ignore, Warn, or Strict, got {o:?}"
            )),
        }
    }
}

struct Walk<'a> {
    path: String,
    dups: &'a RefCell<Vec<String>>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v)
            .map(Value::Number)
            .unwrap_or(Value::Null))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut i = 0usize;
        while let Some(v) = seq.next_element_seed(Walk {
            path: format!("{}[{i}]", self.path),
            dups: self.dups,
        })? {
            out.push(v);
            i += 1;
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let p = join(&self.path, &k);
            let v = map.next_value_seed(Walk {
                path: p.clone(),
                dups: self.dups,
            })?;
            if out.contains_key(&k) {
                self.dups.borrow_mut().push(p);
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// Field validation of a create-only review body (reviews are never stored, so they do not go through
/// `handlers::decode_object`): the fields its kube type lacks and the duplicate keys, as kube's strict
/// decoding reports them. `Err` for `Strict` with problems, else the warnings to send (`Warn`).
pub fn review(
    kind: &str,
    body: &[u8],
    content_type: &str,
    fv: FieldValidation,
) -> Result<Vec<String>, crate::status::ApiError> {
    use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};
    if fv == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let (value, dups) = crate::handlers::parse_body(body, content_type)?;
    let normalized = match kind {
        "SubjectAccessReview" => typed::<authz::SubjectAccessReview>(&value),
        "LocalSubjectAccessReview" => typed::<authz::LocalSubjectAccessReview>(&value),
        "SelfSubjectAccessReview" => typed::<authz::SelfSubjectAccessReview>(&value),
        "SelfSubjectRulesReview" => typed::<authz::SelfSubjectRulesReview>(&value),
        "TokenReview" => typed::<authn::TokenReview>(&value),
        "SelfSubjectReview" => typed::<authn::SelfSubjectReview>(&value),
        _ => None,
    };
    let mut problems: Vec<String> = normalized
        .map(|n| unknown_fields(&value, &n))
        .unwrap_or_default()
        .into_iter()
        .map(|u| format!("unknown field \"{u}\""))
        .collect();
    problems.extend(dups.iter().map(|d| format!("duplicate field \"{d}\"")));
    match fv {
        FieldValidation::Strict if !problems.is_empty() => {
            Err(crate::status::ApiError::bad_request(format!(
                "strict decoding error: {}",
                problems.join(", ")
            )))
        }
        _ => Ok(problems),
    }
}

/// `value` after a round trip through its kube type; `None` when it does not fit the type (the review's
/// own checks report that).
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Option<Value> {
    let t: T = serde_json::from_value(value.clone()).ok()?;
    serde_json::to_value(t).ok()
}

/// Parse JSON, reporting the paths of duplicate keys (the last value wins, as in Go).
pub fn parse_json_with_dups(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let dups = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Walk {
        path: String::new(),
        dups: &dups,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((v, dups.into_inner()))
}

/// Paths present (and not null) in `orig` but absent from `normalized` (the object after a round trip
/// through its typed schema).
pub fn unknown_fields(orig: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(orig, normalized, "", &mut out);
    out
}

fn diff(orig: &Value, norm: &Value, path: &str, out: &mut Vec<String>) {
    match (orig, norm) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, v) in o {
                if v.is_null() {
                    continue;
                }
                let p = join(path, k);
                match n.get(k) {
                    None => out.push(p),
                    Some(nv) => diff(v, nv, &p, out),
                }
            }
        }
        (Value::Array(o), Value::Array(n)) => {
            for (i, (a, b)) in o.iter().zip(n.iter()).enumerate() {
                diff(a, b, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Remove null-valued keys (the typed round trip drops them too).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_found() {
        let (v, d) =
            parse_json_with_dups(br#"{"a":1,"b":{"c":[{"x":1,"x":2}]},"a":3}"#).expect("parse");
        assert_eq!(v["a"], 3);
        assert_eq!(d, vec!["b.c[0].x".to_string(), "a".to_string()]);
    }

    #[test]
    fn unknown_paths() {
        let orig =
            json!({"spec": {"foo": 1, "containers": [{"name": "a", "bar": true}], "n": null}});
        let norm = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            unknown_fields(&orig, &norm),
            vec!["spec.containers[0].bar".to_string(), "spec.foo".to_string()]
        );
    }

    #[test]
    fn modes() {
        assert_eq!(
            FieldValidation::parse(Some("Strict")),
            Ok(FieldValidation::Strict)
        );
        assert_eq!(FieldValidation::parse(None), Ok(FieldValidation::Warn));
        assert!(FieldValidation::parse(Some("x")).is_err());
    }
}
