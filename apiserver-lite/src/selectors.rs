//! Label and field selectors (the string forms of `labelSelector` and `fieldSelector`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<LabelReq>);

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let s = s.trim();
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect(),
    )
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let bad = |t: &str| {
            ApiError::bad_request(format!(
                "unable to parse requirement: invalid label selector: {t:?}"
            ))
        };
        let mut reqs = Vec::new();
        for term in split_top(s) {
            let t = term.as_str();
            let req = if let Some(k) = t.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = t.split_once("!=") {
                LabelReq::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = t.split_once("==") {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = t.split_once('=') {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some(idx) = t.find(" notin ") {
                LabelReq::NotIn(
                    t[..idx].trim().to_string(),
                    parse_set(&t[idx + 7..]).ok_or_else(|| bad(t))?,
                )
            } else if let Some(idx) = t.find(" in ") {
                LabelReq::In(
                    t[..idx].trim().to_string(),
                    parse_set(&t[idx + 4..]).ok_or_else(|| bad(t))?,
                )
            } else {
                LabelReq::Exists(t.trim().to_string())
            };
            let key = match &req {
                LabelReq::Eq(k, _)
                | LabelReq::NotEq(k, _)
                | LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k) => k,
            };
            if !valid_key(key) {
                return Err(bad(t));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => labels.get(k) == Some(v),
            LabelReq::NotEq(k, v) => labels.get(k) != Some(v),
            LabelReq::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            LabelReq::NotIn(k, vs) => labels.get(k).is_none_or(|x| !vs.contains(x)),
            LabelReq::Exists(k) => labels.contains_key(k),
            LabelReq::NotExists(k) => !labels.contains_key(k),
        })
    }

    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        let mut labels = BTreeMap::new();
        if let Some(m) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
            for (k, v) in m {
                if let Some(s) = v.as_str() {
                    labels.insert(k.clone(), s.to_string());
                }
            }
        }
        self.matches(&labels)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReq {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(pub Vec<FieldReq>);

impl FieldSelector {
    /// Parse and check every field against `supported` (the fields this kind can be selected on).
    pub fn parse(s: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, value, negate) = if let Some((k, v)) = term.split_once("!=") {
                (k, v, true)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, v, false)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, v, false)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push(FieldReq {
                field: field.to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `lookup(field)` gives the object's value of a field ("" when unset).
    pub fn matches(&self, lookup: impl Fn(&str) -> String) -> bool {
        self.0
            .iter()
            .all(|r| (lookup(&r.field) == r.value) != r.negate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let s = LabelSelector::parse("app=web,tier!=db,env in (prod, staging),!legacy,team")
            .expect("parse");
        assert_eq!(s.0.len(), 5);
        let obj = json!({"metadata": {"labels": {"app": "web", "env": "prod", "team": "a"}}});
        assert!(s.matches_object(&obj));
        let obj2 = json!({"metadata": {"labels": {"app": "web", "env": "dev", "team": "a"}}});
        assert!(!s.matches_object(&obj2));
        let n = LabelSelector::parse("env notin (prod)").expect("parse");
        assert!(n.matches_object(&json!({"metadata": {}})));
        assert!(!n.matches_object(&obj));
        assert!(
            LabelSelector::parse("a==b")
                .expect("parse")
                .matches_object(&json!({"metadata":{"labels":{"a":"b"}}}))
        );
        assert!(LabelSelector::parse("bad key=1").is_err());
        assert!(LabelSelector::parse("").expect("empty").is_empty());
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse(
            "metadata.name=web,spec.nodeName!=",
            &["metadata.name", "spec.nodeName"],
        )
        .expect("parse");
        assert!(f.matches(|k| if k == "metadata.name" {
            "web".into()
        } else {
            "n1".into()
        }));
        assert!(!f.matches(|k| if k == "metadata.name" {
            "web".into()
        } else {
            "".into()
        }));
        let e = FieldSelector::parse("spec.foo=x", &["metadata.name"]).expect_err("unsupported");
        assert_eq!(e.code, 400);
        assert!(e.message.contains("field label not supported: spec.foo"));
    }
}
