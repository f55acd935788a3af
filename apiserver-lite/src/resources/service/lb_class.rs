//! `spec.loadBalancerClass` as kube-apiserver 1.32 takes it (`validateLoadBalancerClassField` and the
//! registry's `dropTypeDependentFields`): a qualified name, only on a LoadBalancer; it may be set on create
//! or when the type changes to LoadBalancer, and may not change while the type stays LoadBalancer (the
//! class picks the controller that owns the load balancer, so a change would leave two or none of them
//! in charge). Changing the type away from LoadBalancer drops a class the client left as it was.

use serde_json::{Value, json};

use super::super::validation::{QUALIFIED_NAME_MSG, is_qualified_name};
use super::{LOAD_BALANCER_ONLY, service_type};
use crate::status::FieldError;

const FIELD: &str = "spec.loadBalancerClass";

/// The class, `None` when absent or null.
fn class(obj: &Value) -> Option<&Value> {
    obj.pointer("/spec/loadBalancerClass")
        .filter(|v| !v.is_null())
}

fn is_load_balancer(obj: &Value) -> bool {
    service_type(obj) == "LoadBalancer"
}

/// Create and update: a qualified name on a LoadBalancer, forbidden on every other type.
pub fn validate(obj: &Value, errs: &mut Vec<FieldError>) {
    let Some(value) = class(obj) else {
        return;
    };
    if !is_load_balancer(obj) {
        errs.push(FieldError::forbidden(FIELD, LOAD_BALANCER_ONLY));
        return;
    }
    if !value.as_str().is_some_and(is_qualified_name) {
        errs.push(FieldError::invalid(FIELD, value, QUALIFIED_NAME_MSG));
    }
}

/// Update: the class may not change (be set, changed or removed) while the type stays LoadBalancer.
/// kube prints a removed class as `"null"`.
pub fn validate_update(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    if is_load_balancer(old) && is_load_balancer(new) && class(old) != class(new) {
        let shown = class(new).cloned().unwrap_or_else(|| json!("null"));
        errs.push(FieldError::invalid(
            FIELD,
            &shown,
            "may not change once set",
        ));
    }
}

/// An update away from LoadBalancer drops the class when the client left it as it was.
pub fn drop_on_type_change(old: &Value, new: &mut Value) {
    if is_load_balancer(old)
        && !is_load_balancer(new)
        && class(old) == class(new)
        && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
    {
        spec.remove("loadBalancerClass");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(ty: &str, class: Value) -> Value {
        json!({"spec": {"type": ty, "loadBalancerClass": class, "ports": [{"port": 80}]}})
    }

    fn lines(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(FieldError::to_line).collect()
    }

    fn check(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(obj, &mut errs);
        lines(errs)
    }

    fn check_update(old: &Value, new: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_update(old, new, &mut errs);
        lines(errs)
    }

    #[test]
    fn a_qualified_name_only_on_a_load_balancer() {
        assert!(check(&svc("LoadBalancer", json!("example.com/lb"))).is_empty());
        assert!(check(&svc("LoadBalancer", Value::Null)).is_empty());
        assert!(check(&svc("NodePort", Value::Null)).is_empty());
        assert_eq!(
            check(&svc("NodePort", json!("example.com/lb"))),
            ["spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"]
        );
        assert_eq!(
            check(&svc("LoadBalancer", json!("-bad"))),
            [format!(
                "spec.loadBalancerClass: Invalid value: \"-bad\": {QUALIFIED_NAME_MSG}"
            )]
        );
        assert_eq!(
            check(&svc("LoadBalancer", json!("Bad_prefix!/lb"))).len(),
            1
        );
    }

    #[test]
    fn the_class_may_not_change_while_the_type_stays_load_balancer() {
        let none = svc("LoadBalancer", Value::Null);
        let a = svc("LoadBalancer", json!("example.com/a"));
        let b = svc("LoadBalancer", json!("example.com/b"));
        assert!(check_update(&a, &a).is_empty());
        assert!(check_update(&none, &none).is_empty());
        assert_eq!(
            check_update(&a, &b),
            ["spec.loadBalancerClass: Invalid value: \"example.com/b\": may not change once set"]
        );
        assert_eq!(
            check_update(&none, &a),
            ["spec.loadBalancerClass: Invalid value: \"example.com/a\": may not change once set"]
        );
        assert_eq!(
            check_update(&a, &none),
            ["spec.loadBalancerClass: Invalid value: \"null\": may not change once set"]
        );
        // Set together with the change of type to LoadBalancer: allowed.
        assert!(check_update(&svc("NodePort", Value::Null), &a).is_empty());
        assert!(check_update(&svc("ClusterIP", Value::Null), &b).is_empty());
    }

    #[test]
    fn leaving_load_balancer_drops_an_unchanged_class_and_keeps_a_changed_one() {
        let old = svc("LoadBalancer", json!("example.com/a"));
        let mut same = svc("NodePort", json!("example.com/a"));
        drop_on_type_change(&old, &mut same);
        assert!(same["spec"].get("loadBalancerClass").is_none());
        assert!(check(&same).is_empty());
        // The client changed it with the type: kept, so validation refuses it.
        let mut changed = svc("NodePort", json!("example.com/b"));
        drop_on_type_change(&old, &mut changed);
        assert_eq!(changed["spec"]["loadBalancerClass"], "example.com/b");
        assert_eq!(check(&changed).len(), 1);
        // Staying a LoadBalancer: untouched.
        let mut kept = old.clone();
        drop_on_type_change(&old, &mut kept);
        assert_eq!(kept, old);
    }
}
