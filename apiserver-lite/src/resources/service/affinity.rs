//! `spec.sessionAffinity` and `spec.sessionAffinityConfig` of a Service as kube-apiserver 1.32 takes them.
//!
//! Defaults (`SetDefaults_Service`): an empty affinity is `None`, which drops any `sessionAffinityConfig`;
//! `ClientIP` without `sessionAffinityConfig.clientIP.timeoutSeconds` gets the whole config replaced by
//! `{clientIP: {timeoutSeconds: 10800}}`. Validation (`ValidateService`, `validateClientIPAffinityConfig`):
//! the affinity is `ClientIP` or `None`, a `ClientIP` timeout is in `1..=86400`, and `None` has no config.
//! ExternalName Services may have `ClientIP` too (kube does not forbid it; no proxy serves them).

use serde_json::{Value, json};

use crate::status::FieldError;

/// kube's `DefaultClientIPServiceAffinitySeconds` (3 hours).
pub const DEFAULT_TIMEOUT_SECONDS: i64 = 10800;
/// kube's `MaxClientIPServiceAffinitySeconds` (1 day).
pub const MAX_TIMEOUT_SECONDS: i64 = 86400;
/// Sorted, as kube's `sets.List` prints them.
const AFFINITIES: &[&str] = &["ClientIP", "None"];
const CONFIG: &str = "spec.sessionAffinityConfig";

/// `spec.sessionAffinity` as kube's defaults leave it; `spec` must be an object.
pub fn defaults(spec: &mut Value) {
    let affinity = spec.get("sessionAffinity");
    if affinity.is_none_or(|a| a.is_null() || a.as_str() == Some("")) {
        spec["sessionAffinity"] = json!("None");
    }
    match spec["sessionAffinity"].as_str() {
        Some("None") => {
            if let Some(m) = spec.as_object_mut() {
                m.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP") => {
            let timeout = spec.pointer("/sessionAffinityConfig/clientIP/timeoutSeconds");
            if timeout.is_none_or(Value::is_null) {
                spec["sessionAffinityConfig"] =
                    json!({"clientIP": {"timeoutSeconds": DEFAULT_TIMEOUT_SECONDS}});
            }
        }
        _ => {}
    }
}

/// kube's checks of the two fields, with its field paths and messages. A missing affinity is taken as `None`
/// (kube says `Required value`, but its defaults, like [`defaults`], never leave it empty).
pub fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let affinity = obj.pointer("/spec/sessionAffinity");
    let config = obj
        .pointer("/spec/sessionAffinityConfig")
        .filter(|c| !c.is_null());
    match affinity.and_then(Value::as_str) {
        Some("ClientIP") => validate_client_ip(config, errs),
        None | Some("" | "None") => {
            if config.is_some() {
                errs.push(FieldError::forbidden(
                    CONFIG,
                    "must not be set when session affinity is None",
                ));
            }
        }
        Some(_) => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            affinity.unwrap_or(&Value::Null),
            AFFINITIES,
        )),
    }
}

/// kube's `validateClientIPAffinityConfig` and `validateAffinityTimeout`.
fn validate_client_ip(config: Option<&Value>, errs: &mut Vec<FieldError>) {
    const WHY: &str = "when session affinity type is ClientIP";
    let Some(config) = config else {
        errs.push(FieldError::required(CONFIG, WHY));
        return;
    };
    let Some(client_ip) = config.get("clientIP").filter(|c| !c.is_null()) else {
        errs.push(FieldError::required(format!("{CONFIG}.clientIP"), WHY));
        return;
    };
    let field = format!("{CONFIG}.clientIP.timeoutSeconds");
    match client_ip.get("timeoutSeconds").filter(|t| !t.is_null()) {
        None => errs.push(FieldError::required(field, WHY)),
        Some(t)
            if t.as_i64()
                .is_some_and(|s| s > 0 && s <= MAX_TIMEOUT_SECONDS) => {}
        Some(t) => errs.push(FieldError::invalid(
            field,
            t,
            &format!("must be greater than 0 and less than {MAX_TIMEOUT_SECONDS}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(obj, &mut errs);
        errs.iter().map(FieldError::to_line).collect()
    }

    fn defaulted(spec: Value) -> Value {
        let mut obj = json!({"spec": spec});
        defaults(&mut obj["spec"]);
        obj
    }

    #[test]
    fn client_ip_gets_the_default_timeout_and_none_drops_the_config() {
        let plain = defaulted(json!({"sessionAffinity": ""}));
        assert_eq!(plain["spec"], json!({"sessionAffinity": "None"}));
        let none = defaulted(json!({"sessionAffinity": "None",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
        assert_eq!(none["spec"], json!({"sessionAffinity": "None"}));
        assert!(lines(&none).is_empty());
        for config in [
            Value::Null,
            json!({}),
            json!({"clientIP": null}),
            json!({"clientIP": {}}),
        ] {
            let obj =
                defaulted(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": config}));
            assert_eq!(
                obj["spec"]["sessionAffinityConfig"],
                json!({"clientIP": {"timeoutSeconds": 10800}}),
                "{config}"
            );
            assert!(lines(&obj).is_empty());
        }
        let kept = defaulted(json!({"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}));
        assert_eq!(
            kept["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            86400
        );
        assert!(lines(&kept).is_empty());
    }

    #[test]
    fn validation_matches_kube() {
        let timeout = |t: Value| {
            defaulted(json!({"sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": t}}}))
        };
        for (t, shown) in [(json!(0), "0"), (json!(-1), "-1"), (json!(86401), "86401")] {
            assert_eq!(
                lines(&timeout(t)),
                [format!(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: {shown}: \
                     must be greater than 0 and less than 86400"
                )]
            );
        }
        assert_eq!(
            lines(&defaulted(json!({"sessionAffinity": "Sticky"}))),
            [
                "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\""
            ]
        );
        // Not reachable through defaults, but kube's validation has them.
        assert_eq!(
            lines(&json!({"spec": {"sessionAffinity": "None", "sessionAffinityConfig": {}}})),
            [
                "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"
            ]
        );
        assert_eq!(
            lines(
                &json!({"spec": {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}}})
            ),
            [
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Required value: when session affinity type is ClientIP"
            ]
        );
        assert!(lines(&json!({"spec": {}})).is_empty());
    }
}
