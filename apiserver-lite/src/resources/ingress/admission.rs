//! kube-apiserver's DefaultIngressClass admission plugin (on create only): an Ingress that names no class
//! (no `spec.ingressClassName`, no deprecated `kubernetes.io/ingress.class` annotation) gets the IngressClass
//! annotated `ingressclass.kubernetes.io/is-default-class: "true"`, the newest if several are (then by
//! name), as kube 1.32 picks; without one it stays classless.

use serde_json::{Value, json};

use super::{CLASS_ANNOTATION, DEFAULT_CLASS_ANNOTATION};
use crate::handlers::Api;
use crate::resources::Kind;
use crate::status::ApiResult;

/// The default class among `classes`: kube's `getDefaultClass` (newest creation time first, then name).
pub fn default_class(classes: &[Value]) -> Option<String> {
    crate::resources::default_class::newest(classes, |c| {
        c.pointer("/metadata/annotations")
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .and_then(Value::as_str)
            == Some("true")
    })
}

/// Whether an Ingress already says which class it wants (the field, even "", or the annotation).
fn has_class(ingress: &Value) -> bool {
    ingress
        .pointer("/spec/ingressClassName")
        .is_some_and(|c| !c.is_null())
        || ingress
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(CLASS_ANNOTATION))
            .is_some()
}

/// The plugin, on create of any kind (only Ingresses are touched).
pub async fn admit_create(api: &Api, kind: Kind, obj: &mut Value) -> ApiResult<()> {
    if kind != Kind::Ingress || has_class(obj) {
        return Ok(());
    }
    let classes = crate::resources::default_class::list(api, Kind::IngressClass).await?;
    if let Some(name) = default_class(&classes) {
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        obj["spec"]["ingressClassName"] = json!(name);
    }
    Ok(())
}
