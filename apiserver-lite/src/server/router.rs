//! Request handling: authentication, body limits, routing to discovery, openapi and the REST verbs,
//! and the one place where errors become `Status` responses.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use crate::auth::{TokenAuth, UserInfo};
use crate::discovery::{self, OpenApi};
use crate::handlers::{
    self, Api, DeleteOpts, Query, Repr, WriteOpts, parse_body, render_list, render_one,
    repr_from_accept,
};
use crate::patch::PatchType;
use crate::resources::{Kind, ResourceDef, find_resource_version};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};

pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub struct State {
    pub api: Api,
    pub authz: crate::authz::Authorizer,
    /// Client of the agents' API (pods/log, pods/exec).
    pub kubelet: crate::proxy::KubeletClient,
    pub openapi: OpenApi,
    pub tokens: TokenAuth,
    /// `host:port` clients should use (legacy discovery).
    pub server_address: String,
    /// The cluster CA (PEM), served unauthenticated at `/cacerts` for joining nodes to pin.
    pub ca_pem: String,
    /// Signs and checks service-account tokens.
    pub sa_key: crate::serviceaccount::SigningKey,
    /// Latest resource metrics of nodes and pods (`metrics.k8s.io`).
    pub metrics: std::sync::Arc<crate::metrics::MetricsStore>,
    /// The server's own request metrics (`/metrics`).
    pub requests: Arc<super::metrics::RequestMetrics>,
}

fn json_response(code: u16, v: &Value, content_type: &str) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// A protobuf body (`crate::protobuf_encode`), for clients that asked for it.
fn protobuf_response(code: u16, bytes: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::protobuf_encode::CONTENT_TYPE),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status_json(), "application/json")
}

fn text(code: u16, s: &'static str) -> Response<Body> {
    let mut r = Response::new(Body::from(s));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The 201 answer to a review, after field validation of its body (checked once the review's own
/// authorization has passed: an unauthorized caller gets 403 whatever it sent). Reviews have no side
/// effects, so evaluating one that is then refused changes nothing.
fn review_response(
    review: &Value,
    kind: &str,
    body: &[u8],
    content_type: &str,
    query: &Query,
) -> ApiResult<Response<Body>> {
    let fv = crate::strict::FieldValidation::parse(query.get("fieldValidation"))
        .map_err(ApiError::bad_request)?;
    let warnings = crate::strict::review(kind, body, content_type, fv)?;
    Ok(with_warnings(
        json_response(201, review, "application/json"),
        &warnings,
    ))
}

fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = HeaderValue::from_str(&v) {
            r.headers_mut().append("Warning", h);
        }
    }
    r
}

fn header_str(req: &Request<hyper::body::Incoming>, h: header::HeaderName) -> &str {
    req.headers()
        .get(h)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub async fn handle(
    state: Arc<State>,
    peer: Option<(String, Vec<String>)>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let info = super::metrics::RequestInfo::parse(
        &method,
        &path,
        req.uri().query(),
        header_str(&req, header::CONTENT_TYPE),
    );
    let in_flight = state.requests.start(info);
    let resp = handle_inner(&state, peer, req).await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, code = resp.status().as_u16(), "request");
    state.requests.finish(in_flight, resp)
}

/// `GET /metrics`: allowed to whoever may `get` the non-resource URL (kube's `system:monitoring`).
async fn metrics(state: &State, user: &UserInfo, method: &Method) -> ApiResult<Response<Body>> {
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    let a = crate::authz::Attributes {
        user: user.name.clone(),
        groups: crate::authz::effective_groups(user),
        verb: "get".into(),
        path: "/metrics".into(),
        ..Default::default()
    };
    if let crate::authz::Decision::Deny(reason) = state.authz.authorize(&a).await? {
        return Err(crate::authz::forbidden(&a, &reason));
    }
    let mut r = Response::new(Body::from(state.requests.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

async fn authenticate(
    state: &State,
    peer: Option<(String, Vec<String>)>,
    req: &Request<hyper::body::Incoming>,
) -> ApiResult<Option<UserInfo>> {
    let auth = header_str(req, header::AUTHORIZATION);
    if let Some(tok) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    {
        let tok = tok.trim();
        if let Some(u) = state.tokens.lookup(tok) {
            return Ok(Some(u));
        }
        if crate::bootstrap_tokens::split_bearer(tok).is_some() {
            return crate::bootstrap_tokens::authenticate(state.authz.store(), tok)
                .await
                .map(Some)
                .map_err(|e| ApiError::new(401, "Unauthorized", format!("Unauthorized: {e}")));
        }
        if crate::serviceaccount::jwt::looks_like_jwt(tok) {
            return crate::serviceaccount::authenticate(&state.sa_key, state.authz.store(), tok)
                .await
                .map(Some)
                .map_err(|e| {
                    tracing::debug!("service-account token rejected: {e}");
                    ApiError::new(401, "Unauthorized", format!("Unauthorized: {e}"))
                });
        }
        return Ok(None);
    }
    Ok(peer.map(|(name, groups)| UserInfo {
        name,
        uid: String::new(),
        groups,
        extra: Default::default(),
    }))
}

async fn handle_inner(
    state: &State,
    peer: Option<(String, Vec<String>)>,
    req: Request<hyper::body::Incoming>,
) -> ApiResult<Response<Body>> {
    let path = req.uri().path().to_string();
    let trimmed = path.trim_end_matches('/');
    match trimmed {
        "/healthz" | "/livez" | "/readyz" => return Ok(text(200, "ok")),
        p if p.starts_with("/healthz/")
            || p.starts_with("/livez/")
            || p.starts_with("/readyz/") =>
        {
            return Ok(text(200, "ok"));
        }
        "/cacerts" => {
            let mut r = Response::new(Body::from(state.ca_pem.clone()));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            );
            return Ok(r);
        }
        "/version" => {
            return Ok(json_response(
                200,
                &discovery::version(),
                "application/json",
            ));
        }
        _ => {}
    }
    let Some(user) = authenticate(state, peer, &req).await? else {
        return Err(ApiError::unauthorized());
    };
    let user = crate::authz::impersonation::impersonate(&state.authz, user, req.headers()).await?;
    if let Some(target) = crate::proxy::Target::parse(req.method(), &path) {
        return crate::proxy::handle(state, &user, target, req).await;
    }
    let method = req.method().clone();
    let accept = header_str(&req, header::ACCEPT).to_string();
    let content_type = header_str(&req, header::CONTENT_TYPE).to_string();
    let query = Query::parse(req.uri().query());
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > MAX_BODY
    {
        return Err(ApiError::too_large());
    }
    let body: Bytes = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(ApiError::too_large());
            }
            return Err(ApiError::bad_request(format!("reading request body: {e}")));
        }
    };
    let segs: Vec<&str> = trimmed.split('/').filter(|s| !s.is_empty()).collect();
    let get_only = |m: &Method| {
        if m == Method::GET {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(m.as_str()))
        }
    };
    match segs.as_slice() {
        ["metrics"] => metrics(state, &user, &method).await,
        ["api"] => {
            get_only(&method)?;
            Ok(match discovery::wants_aggregated(&accept) {
                Some(ct) => json_response(200, &discovery::aggregated(true, ct), ct),
                None => json_response(
                    200,
                    &discovery::api_versions(&state.server_address),
                    "application/json",
                ),
            })
        }
        ["apis"] => {
            get_only(&method)?;
            Ok(match discovery::wants_aggregated(&accept) {
                Some(ct) => json_response(200, &discovery::aggregated(false, ct), ct),
                None => json_response(200, &discovery::api_group_list(), "application/json"),
            })
        }
        ["api", "v1"] => {
            get_only(&method)?;
            let l = discovery::resource_list("", "v1").ok_or_else(ApiError::path_not_found)?;
            Ok(json_response(200, &l, "application/json"))
        }
        // metrics.k8s.io: served here, from the scraped usage (`crate::metrics`).
        ["apis", "metrics.k8s.io"] => {
            get_only(&method)?;
            Ok(json_response(
                200,
                &crate::metrics::api::api_group(),
                "application/json",
            ))
        }
        ["apis", "metrics.k8s.io", "v1beta1", rest @ ..] => {
            let v = crate::metrics::api::serve(state, &user, &method, rest, &query).await?;
            Ok(json_response(200, &v, "application/json"))
        }
        ["apis", g] => {
            get_only(&method)?;
            let l = discovery::group(g).ok_or_else(ApiError::path_not_found)?;
            Ok(json_response(200, &l, "application/json"))
        }
        ["apis", g, v] => {
            get_only(&method)?;
            let l = discovery::resource_list(g, v).ok_or_else(ApiError::path_not_found)?;
            Ok(json_response(200, &l, "application/json"))
        }
        ["openapi", "v2"] => {
            get_only(&method)?;
            let (ct, bytes) = discovery::openapi_v2(&accept);
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            Ok(r)
        }
        ["openapi", "v3"] => {
            get_only(&method)?;
            Ok(json_response(200, &state.openapi.root, "application/json"))
        }
        ["openapi", "v3", rest @ ..] => {
            get_only(&method)?;
            let key = rest.join("/");
            let (hash, bytes) = state
                .openapi
                .doc(&key)
                .ok_or_else(ApiError::path_not_found)?;
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(etag) = HeaderValue::from_str(&format!("\"{hash}\"")) {
                r.headers_mut().insert(header::ETAG, etag);
            }
            let cache = if query.get("hash") == Some(hash) {
                "public, immutable, max-age=31536000"
            } else {
                "no-cache, private"
            };
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            Ok(r)
        }
        ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"] => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let v = crate::access_review::subject_access_review(
                &state.authz,
                &user,
                None,
                &body,
                &content_type,
            )
            .await?;
            review_response(&v, "SubjectAccessReview", &body, &content_type, &query)
        }
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "namespaces",
            ns,
            "localsubjectaccessreviews",
        ] => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let v = crate::access_review::subject_access_review(
                &state.authz,
                &user,
                Some(ns),
                &body,
                &content_type,
            )
            .await?;
            review_response(&v, "LocalSubjectAccessReview", &body, &content_type, &query)
        }
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let auth = crate::serviceaccount::token_review::Authenticators {
                tokens: &state.tokens,
                key: &state.sa_key,
                authz: &state.authz,
            };
            let v = crate::serviceaccount::token_review::token_review(
                &auth,
                &user,
                &body,
                &content_type,
            )
            .await?;
            review_response(&v, "TokenReview", &body, &content_type, &query)
        }
        [".well-known", "openid-configuration"] | ["openid", "v1", "jwks"] => {
            issuer_discovery(state, &user, &method, trimmed).await
        }
        [
            "apis",
            g @ ("authorization.k8s.io" | "authentication.k8s.io"),
            "v1",
            review,
        ] => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed(method.as_str()));
            }
            let v =
                crate::authz::review::review(&state.authz, &user, g, review, &body, &content_type)
                    .await?;
            let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
            review_response(&v, kind, &body, &content_type, &query)
        }
        ["api", "v1", rest @ ..] => {
            resource(
                state,
                &user,
                ("", "v1"),
                rest,
                &method,
                &accept,
                &content_type,
                &query,
                body,
            )
            .await
        }
        ["apis", g, v, rest @ ..] => {
            let (g, v) = (g.to_string(), v.to_string());
            resource(
                state,
                &user,
                (&g, &v),
                rest,
                &method,
                &accept,
                &content_type,
                &query,
                body,
            )
            .await
        }
        _ => Err(ApiError::path_not_found()),
    }
}

/// Service-account issuer discovery (`crate::serviceaccount::discovery`): `get` on the non-resource URL
/// must be allowed (kube binds `system:service-account-issuer-discovery` to every service account).
async fn issuer_discovery(
    state: &State,
    user: &UserInfo,
    method: &Method,
    path: &str,
) -> ApiResult<Response<Body>> {
    use crate::serviceaccount::discovery as oidc;
    if method != Method::GET {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    let a = crate::authz::Attributes {
        user: user.name.clone(),
        groups: crate::authz::effective_groups(user),
        verb: "get".into(),
        path: path.to_string(),
        ..Default::default()
    };
    if let crate::authz::Decision::Deny(reason) = state.authz.authorize(&a).await? {
        return Err(crate::authz::forbidden(&a, &reason));
    }
    let (doc, content_type) = if path == oidc::JWKS_PATH {
        let jwks = oidc::jwks(&state.sa_key).map_err(ApiError::internal)?;
        (jwks, oidc::JWKS_CONTENT_TYPE)
    } else {
        let config = oidc::openid_configuration(&state.server_address);
        (config, oidc::CONFIG_CONTENT_TYPE)
    };
    let mut r = json_response(200, &doc, content_type);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(oidc::CACHE_CONTROL),
    );
    Ok(r)
}

fn selectors(def: &ResourceDef, q: &Query) -> ApiResult<(LabelSelector, FieldSelector)> {
    let l = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))?;
    let f = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), def.field_selectors())?;
    Ok((l, f))
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    state: &State,
    user: &UserInfo,
    (group, version): (&str, &str),
    segs: &[&str],
    method: &Method,
    accept: &str,
    content_type: &str,
    q: &Query,
    body: Bytes,
) -> ApiResult<Response<Body>> {
    let api = &state.api;
    let (ns, rest): (Option<&str>, &[&str]) = if segs.len() >= 3
        && segs[0] == "namespaces"
        && find_resource_version(group, version, segs[2]).is_some_and(|d| d.namespaced)
    {
        (Some(segs[1]), &segs[2..])
    } else {
        (None, segs)
    };
    let Some(first) = rest.first() else {
        return Err(ApiError::path_not_found());
    };
    let def = find_resource_version(group, version, first).ok_or_else(ApiError::path_not_found)?;
    if rest.len() > 3 || (ns.is_none() && def.namespaced && rest.len() > 1) {
        return Err(ApiError::path_not_found());
    }
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied();
    if let Some(s) = sub
        && !def.subresources.contains(&s)
    {
        return Err(ApiError::path_not_found());
    }
    let authz_req = crate::authz::Request {
        method,
        group,
        resource: def.plural,
        subresource: sub,
        namespace: ns,
        name,
        watch: q.flag("watch") && q.get("watch").is_some(),
    };
    state
        .authz
        .check(user, &authz_req, &body, content_type)
        .await?;
    let repr = repr_from_accept(accept);
    let protobuf = repr == Repr::Object && crate::protobuf_encode::accepts(accept);
    let ok = |code: u16, v: &Value| {
        if protobuf && let Some(bytes) = crate::protobuf_encode::encode(v) {
            return protobuf_response(code, bytes);
        }
        let ct = if repr == Repr::Table && v.get("kind").and_then(Value::as_str) == Some("Table") {
            "application/json;as=Table;v=v1;g=meta.k8s.io"
        } else {
            "application/json"
        };
        json_response(code, v, ct)
    };
    match (name, sub) {
        (None, _) => match *method {
            Method::GET => {
                let (l, f) = selectors(def, q)?;
                if q.flag("watch") && q.get("watch").is_some() {
                    let pb =
                        protobuf && crate::protobuf_encode::watchable(&def.api_version(), def.kind);
                    return crate::watch::watch_with(api, def, ns, q, repr, l, f, pb).await;
                }
                let page =
                    crate::list::list(api, def, ns, &l, &f, &crate::list::ListOpts::from_query(q)?)
                        .await?;
                let mut v = render_list(def, page.items.clone(), page.rev, repr, q);
                page.decorate(&mut v);
                Ok(ok(200, &v))
            }
            Method::POST => {
                if def.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("POST"));
                }
                let opts = WriteOpts::from_query(q)?;
                let (mut v, dups) = parse_body(&body, content_type)?;
                if def.kind_id == Kind::CertificateSigningRequest {
                    crate::csr::stamp_requestor(&mut v, user);
                }
                let (obj, w) = api.create(def, ns, v, &dups, &opts).await?;
                Ok(with_warnings(ok(201, &obj), &w))
            }
            Method::DELETE => {
                // Like kube-apiserver: no deletecollection across all namespaces.
                if def.namespaced && ns.is_none() {
                    return Err(ApiError::method_not_allowed("DELETE"));
                }
                let (l, f) = selectors(def, q)?;
                let opts = WriteOpts::from_query(q)?;
                let dopts = DeleteOpts::from_request(q, &body)?;
                let (items, rev) = api.list(def, ns, &l, &f).await?;
                let mut out = Vec::new();
                for it in items {
                    let n = it
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let ins = it
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    match api
                        .delete(def, ins.as_deref(), &n, &dopts, opts.dry_run)
                        .await
                    {
                        Ok(v) => out.push(v),
                        Err(e) if e.code == 404 || e.code == 403 => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(ok(200, &handlers::list_object(def, out, rev)))
            }
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        (Some(name), Some("approval")) if def.kind_id == Kind::CertificateSigningRequest => {
            match *method {
                Method::GET => Ok(ok(
                    200,
                    &render_one(def, &api.get(def, ns, name).await?, repr, q),
                )),
                Method::PUT => {
                    let opts = WriteOpts::from_query(q)?;
                    let (v, _) = parse_body(&body, content_type)?;
                    let obj = crate::csr::update_approval(api, def, name, v, &opts).await?;
                    Ok(ok(200, &obj))
                }
                _ => Err(ApiError::method_not_allowed(method.as_str())),
            }
        }
        // `ephemeralcontainers` is a subresource of pods only (checked against the definition above).
        (Some(name), None | Some("status" | "ephemeralcontainers")) => match *method {
            Method::GET => {
                let v = api.get(def, ns, name).await?;
                Ok(ok(200, &render_one(def, &v, repr, q)))
            }
            Method::PUT => {
                let opts = WriteOpts::from_query(q)?;
                let (v, dups) = parse_body(&body, content_type)?;
                let (obj, created, w) = api.update(def, ns, name, sub, v, &dups, &opts).await?;
                Ok(with_warnings(ok(if created { 201 } else { 200 }, &obj), &w))
            }
            Method::PATCH => {
                let pt = PatchType::from_content_type(content_type)
                    .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
                let opts = WriteOpts::from_query(q)?;
                let (v, dups) = parse_body(
                    &body,
                    if pt == PatchType::Apply {
                        "application/yaml"
                    } else {
                        "application/json"
                    },
                )?;
                let force = q.flag("force") && q.get("force").is_some();
                let (obj, created, w) = api
                    .patch(def, ns, name, sub, pt, v, &dups, &opts, force)
                    .await?;
                Ok(with_warnings(ok(if created { 201 } else { 200 }, &obj), &w))
            }
            Method::DELETE if sub.is_none() => {
                let opts = WriteOpts::from_query(q)?;
                let dopts = DeleteOpts::from_request(q, &body)?;
                let v = api.delete(def, ns, name, &dopts, opts.dry_run).await?;
                Ok(ok(200, &v))
            }
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        (Some(name), Some("scale")) => {
            let (code, v, w) =
                crate::scale::serve(api, def, ns, name, method, content_type, q, &body, repr)
                    .await?;
            Ok(with_warnings(ok(code, &v), &w))
        }
        (Some(name), Some("eviction")) if def.kind_id == Kind::Pod => match *method {
            Method::POST => {
                let opts = WriteOpts::from_query(q)?;
                let (v, _) = parse_body(&body, content_type)?;
                let status =
                    crate::eviction::evict(api, ns.unwrap_or("default"), name, &v, q, opts.dry_run)
                        .await?;
                Ok(json_response(201, &status, "application/json"))
            }
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        (Some(name), Some("token")) if def.kind_id == Kind::ServiceAccount => match *method {
            Method::POST => {
                let (v, _) = parse_body(&body, content_type)?;
                let tr = crate::serviceaccount::token_request::create(
                    api,
                    &state.sa_key,
                    ns.unwrap_or("default"),
                    name,
                    &v,
                )
                .await?;
                Ok(json_response(201, &tr, "application/json"))
            }
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        (Some(name), Some("binding")) if def.kind_id == Kind::Pod => match *method {
            Method::POST => {
                let opts = WriteOpts::from_query(q)?;
                let (v, _) = parse_body(&body, content_type)?;
                api.bind(ns.unwrap_or("default"), name, &v, opts.dry_run)
                    .await?;
                Ok(json_response(
                    201,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                    "application/json",
                ))
            }
            _ => Err(ApiError::method_not_allowed(method.as_str())),
        },
        _ => Err(ApiError::path_not_found()),
    }
}
