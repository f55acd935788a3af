//! Authorization, in kube-apiserver's order: the `system:masters` group may do anything; then the Node
//! authorizer for node credentials; then RBAC; anything not allowed is a 403 `Forbidden` Status worded like
//! kube-apiserver's. After an allow, NodeRestriction admission limits what a node may write, and RBAC's
//! privilege-escalation check limits which roles and bindings a user may write.
//!
//! Every authenticated user is also in the group `system:authenticated`. Discovery, openapi, version and
//! health are not resource requests and are served to every authenticated user without a check here
//! (the `system:discovery`/`system:public-info-viewer` bootstrap roles describe the same for reviews).
//!
//! Modules: `rbac` (rule evaluation over the stored roles and bindings), `node` (Node authorizer and
//! NodeRestriction), `escalation`, `impersonation` (`kubectl --as`), `review` (self-subject access/rules
//! reviews, `kubectl auth whoami`), `kinds` (the served RBAC kinds), `bootstrap` (default roles).

pub mod bootstrap;
mod escalation;
pub mod impersonation;
pub mod kinds;
pub mod node;
pub mod rbac;
pub mod review;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::status::{ApiError, ApiResult, qualified};
use crate::store::Store;

pub const MASTERS_GROUP: &str = "system:masters";
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// What a request asks to do, as the authorizers see it (kube-apiserver's `authorizer.Attributes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: String,
    /// The user's groups, including `system:authenticated`.
    pub groups: Vec<String>,
    pub verb: String,
    pub resource_request: bool,
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    /// "" for cluster-scoped resources and for requests across all namespaces.
    pub namespace: String,
    pub name: String,
    /// The URL path of a non-resource request.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Denied, with the reason appended to the Forbidden message.
    Deny(String),
}

/// The parts of a REST request the authorizers need.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a Method,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    pub watch: bool,
}

/// The API verb of a REST request.
pub fn verb(req: &Request<'_>) -> &'static str {
    let named = req.name.is_some_and(|n| !n.is_empty());
    if matches!(
        req.subresource,
        Some("exec" | "attach" | "portforward" | "proxy")
    ) && *req.method == Method::GET
    {
        // Websocket upgrades of connect subresources need `create` (kube-apiserver since 1.31).
        return "create";
    }
    match *req.method {
        Method::GET | Method::HEAD if req.watch => "watch",
        Method::GET | Method::HEAD if named => "get",
        Method::GET | Method::HEAD => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// The user's groups with the implicit `system:authenticated`.
pub fn effective_groups(user: &UserInfo) -> Vec<String> {
    let mut g = user.groups.clone();
    if !g.iter().any(|x| x == AUTHENTICATED_GROUP) {
        g.push(AUTHENTICATED_GROUP.to_string());
    }
    g
}

impl Attributes {
    pub fn for_request(user: &UserInfo, req: &Request<'_>) -> Self {
        // As in kube-apiserver, a request for one namespace object is "in" that namespace, so a
        // RoleBinding there can grant `get namespaces`.
        let namespace = match (req.group, req.resource, req.name) {
            ("", "namespaces", Some(n)) => Some(n),
            _ => req.namespace,
        };
        Attributes {
            user: user.name.clone(),
            groups: effective_groups(user),
            verb: verb(req).to_string(),
            resource_request: true,
            api_group: req.group.to_string(),
            resource: req.resource.to_string(),
            subresource: req.subresource.unwrap_or("").to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            name: req.name.unwrap_or("").to_string(),
            path: String::new(),
        }
    }

    fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS_GROUP)
    }

    fn subject_prefix(&self) -> String {
        let q = qualified(&self.api_group, &self.resource);
        if self.name.is_empty() {
            format!("{q} is forbidden")
        } else {
            format!("{q} {:?} is forbidden", self.name)
        }
    }

    fn details(&self) -> Value {
        let mut d = json!({"name": self.name, "kind": self.resource});
        if !self.api_group.is_empty() {
            d["group"] = json!(self.api_group);
        }
        d
    }
}

/// The 403 of a denied request, worded like kube-apiserver's.
pub fn forbidden(a: &Attributes, reason: &str) -> ApiError {
    let mut msg = if a.resource_request {
        let res = if a.subresource.is_empty() {
            a.resource.clone()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!(
            "{}: User {:?} cannot {} resource {res:?} in API group {:?} {scope}",
            a.subject_prefix(),
            a.user,
            a.verb,
            a.api_group
        )
    } else {
        format!(
            "forbidden: User {:?} cannot {} path {:?}",
            a.user, a.verb, a.path
        )
    };
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    let mut e = ApiError::forbidden(msg);
    if a.resource_request {
        e.details = Some(a.details());
    }
    e
}

/// The 403 of a request an admission check refused.
pub fn admission_forbidden(a: &Attributes, reason: &str) -> ApiError {
    let mut e = ApiError::forbidden(format!("{}: {reason}", a.subject_prefix()));
    e.details = Some(a.details());
    e
}

/// The authorizer chain over the store's RBAC objects and pods.
#[derive(Clone)]
pub struct Authorizer {
    store: Arc<dyn Store>,
    /// The server's watch-fed RBAC objects; without them (tests) every decision reads the store.
    rbac_cache: Option<rbac::cache::RbacCache>,
}

impl Authorizer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Authorizer {
            store,
            rbac_cache: None,
        }
    }

    /// Allow from a watch-fed copy of the RBAC objects; denials are still decided from the store.
    pub fn with_rbac_cache(mut self) -> Self {
        self.rbac_cache = Some(rbac::cache::RbacCache::start(&self.store));
        self
    }

    /// masters → Node → RBAC. Anything not allowed is denied.
    pub async fn authorize(&self, a: &Attributes) -> ApiResult<Decision> {
        if a.is_master() {
            return Ok(Decision::Allow);
        }
        let mut reason = String::new();
        if let Some(n) = node::node_name(&a.user, &a.groups) {
            match node::authorize(self.store.as_ref(), n, a).await? {
                Some(Decision::Allow) => return Ok(Decision::Allow),
                Some(Decision::Deny(r)) => reason = r,
                None => {}
            }
        }
        // The cache only allows: what it would deny is decided from the store, so a grant made a moment
        // ago is honoured (see rbac::cache).
        if self.rbac_cache.as_ref().and_then(|c| c.allows(a)) == Some(true) {
            return Ok(Decision::Allow);
        }
        let rules = rbac::rules_for(self.store.as_ref(), &a.user, &a.groups, &a.namespace).await?;
        if rbac::rules_allow(&rules, a) {
            return Ok(Decision::Allow);
        }
        Ok(Decision::Deny(reason))
    }

    /// Authorize a REST request, then run NodeRestriction and the RBAC escalation check on it.
    /// `body` and `content_type` are the request's (for admission of writes).
    pub async fn check(
        &self,
        user: &UserInfo,
        req: &Request<'_>,
        body: &[u8],
        content_type: &str,
    ) -> ApiResult<()> {
        let a = Attributes::for_request(user, req);
        if let Decision::Deny(reason) = self.authorize(&a).await? {
            tracing::debug!(user = %a.user, verb = %a.verb, resource = %a.resource, "forbidden");
            return Err(forbidden(&a, &reason));
        }
        if a.is_master() {
            return Ok(());
        }
        let object = if matches!(a.verb.as_str(), "create" | "update" | "patch") {
            crate::handlers::parse_body(body, content_type)
                .ok()
                .map(|(v, _)| v)
        } else {
            None
        };
        if let Some(n) = node::node_name(&a.user, &a.groups) {
            let old_node = if a.resource == "nodes" && a.api_group.is_empty() && !a.name.is_empty()
            {
                node::stored_node(self.store.as_ref(), &a.name).await?
            } else {
                None
            };
            if let Some(why) = node::admit(n, &a, object.as_ref(), old_node.as_ref()) {
                return Err(admission_forbidden(&a, &why));
            }
            if a.api_group.is_empty() && a.resource == "serviceaccounts" && a.subresource == "token"
            {
                let why =
                    node::admit_token_request(self.store.as_ref(), n, &a, object.as_ref()).await?;
                if let Some(why) = why {
                    return Err(admission_forbidden(&a, &why));
                }
            }
        }
        escalation::check(self, &a, object.as_ref()).await
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}
