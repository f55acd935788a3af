//! The RBAC objects, decoded and kept current from watches, for the authorizer's allow path: without them
//! every request of a user outside `system:masters` listed and decoded every ClusterRoleBinding and read
//! each bound role from the store (several etcd round trips per request). kube's RBAC authorizer reads
//! informers the same way.
//!
//! The copy lags the store by one watch delivery. The authorizer trusts it only to allow: a request the
//! cache would deny is decided again from the store, so a new grant works from the next request on, and
//! only a revocation can lag (by that one delivery, as in kube).

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;

use super::{binding_grant, cluster_binding_grant, rules_allow};
use crate::authz::Attributes;
use crate::prefix_cache::PrefixCache;
use crate::resources::{Kind, by_kind};
use crate::store::{KeyValue, Store};

fn typed<T: DeserializeOwned>(kv: &KeyValue) -> Option<T> {
    match serde_json::from_slice(&kv.value) {
        Ok(t) => Some(t),
        Err(e) => {
            // An undecodable object grants nothing; it must not lock everyone else out.
            tracing::warn!(key = %kv.key, error = %e, "leaving an undecodable RBAC object out of the cache");
            None
        }
    }
}

/// Watch-fed ClusterRoles, ClusterRoleBindings, Roles and RoleBindings.
#[derive(Clone)]
pub struct RbacCache {
    cluster_roles: PrefixCache<ClusterRole>,
    cluster_role_bindings: PrefixCache<ClusterRoleBinding>,
    roles: PrefixCache<Role>,
    role_bindings: PrefixCache<RoleBinding>,
}

impl RbacCache {
    /// Start the four watches. Needs a Tokio runtime.
    pub fn start(store: &Arc<dyn Store>) -> RbacCache {
        let prefix = |kind| by_kind(kind).prefix(None);
        RbacCache {
            cluster_roles: PrefixCache::start(store.clone(), &prefix(Kind::ClusterRole), typed),
            cluster_role_bindings: PrefixCache::start(
                store.clone(),
                &prefix(Kind::ClusterRoleBinding),
                typed,
            ),
            roles: PrefixCache::start(store.clone(), &prefix(Kind::Role), typed),
            role_bindings: PrefixCache::start(store.clone(), &prefix(Kind::RoleBinding), typed),
        }
    }

    /// Whether the ClusterRole `name` allows `a` (a missing role allows nothing).
    fn cluster_role_allows(&self, name: &str, a: &Attributes) -> Option<bool> {
        let role = self
            .cluster_roles
            .get(&by_kind(Kind::ClusterRole).key(None, name))?;
        Some(role.is_some_and(|r| rules_allow(r.rules.as_deref().unwrap_or_default(), a)))
    }

    /// Whether the Role `name` of `ns` allows `a`.
    fn role_allows(&self, ns: &str, name: &str, a: &Attributes) -> Option<bool> {
        let role = self.roles.get(&by_kind(Kind::Role).key(Some(ns), name))?;
        Some(role.is_some_and(|r| rules_allow(r.rules.as_deref().unwrap_or_default(), a)))
    }

    /// Whether the rules [`super::rules_for`] finds for `a`'s user allow `a`, from the cache; `None` until all
    /// four watches have listed.
    pub fn allows(&self, a: &Attributes) -> Option<bool> {
        let crbs = self
            .cluster_role_bindings
            .list(&by_kind(Kind::ClusterRoleBinding).prefix(None))?;
        for b in &crbs {
            if let Some(role) = cluster_binding_grant(b, &a.user, &a.groups)
                && self.cluster_role_allows(role, a)?
            {
                return Some(true);
            }
        }
        if a.namespace.is_empty() {
            return Some(false);
        }
        let rbs = self
            .role_bindings
            .list(&by_kind(Kind::RoleBinding).prefix(Some(&a.namespace)))?;
        for b in &rbs {
            let allowed = match binding_grant(b, &a.user, &a.groups, &a.namespace) {
                Some(("ClusterRole", name)) => self.cluster_role_allows(name, a)?,
                Some(("Role", name)) => self.role_allows(&a.namespace, name, a)?,
                _ => false,
            };
            if allowed {
                return Some(true);
            }
        }
        Some(false)
    }
}
