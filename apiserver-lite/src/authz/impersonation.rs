//! User impersonation (`kubectl --as=<user> --as-group=<group>`): the `Impersonate-User`, `Impersonate-Group`
//! and `Impersonate-Uid` headers make a request act as another user, when the requester may `impersonate`
//! that user (`users`, or `serviceaccounts` for `system:serviceaccount:<ns>:<name>`), each group (`groups`)
//! and the uid (`uids.authentication.k8s.io`).

use http::HeaderMap;

use super::{Attributes, Authorizer, Decision, effective_groups, forbidden};
use crate::auth::UserInfo;
use crate::status::{ApiError, ApiResult};

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// The user a request acts as: `user` itself, or the impersonated one after checking that `user` may.
pub async fn impersonate(
    authz: &Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
) -> ApiResult<UserInfo> {
    let names = values(headers, "impersonate-user");
    let groups = values(headers, "impersonate-group");
    let uids = values(headers, "impersonate-uid");
    let has_extra = headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-extra-"));
    let Some(name) = names.first().copied() else {
        if groups.is_empty() && uids.is_empty() && !has_extra {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "impersonating groups, a uid or extra fields requires impersonating a user",
        ));
    };
    if names.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "only one user and one uid may be impersonated",
        ));
    }
    let base = Attributes {
        user: user.name.clone(),
        groups: effective_groups(&user),
        verb: "impersonate".into(),
        resource_request: true,
        ..Attributes::default()
    };
    let mut wanted = Vec::new();
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => wanted.push(("", "serviceaccounts", ns, sa)),
        None => wanted.push(("", "users", "", name)),
    }
    for g in &groups {
        wanted.push(("", "groups", "", g));
    }
    for u in &uids {
        wanted.push(("authentication.k8s.io", "uids", "", u));
    }
    for (group, resource, ns, n) in wanted {
        let a = Attributes {
            api_group: group.into(),
            resource: resource.into(),
            namespace: ns.into(),
            name: n.into(),
            ..base.clone()
        };
        if let Decision::Deny(reason) = authz.authorize(&a).await? {
            return Err(forbidden(&a, &reason));
        }
    }
    Ok(UserInfo {
        name: name.to_string(),
        uid: uids.first().map(|u| u.to_string()).unwrap_or_default(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        extra: Default::default(),
    })
}
