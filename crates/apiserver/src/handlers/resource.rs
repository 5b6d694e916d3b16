//! Resource verbs: get, list, watch, create, update, patch, delete, deletecollection.

use super::codec::{self, Representation};
use super::fieldmanager::FieldManager;
use super::query::Query;
use super::response;
use super::subresource;
use super::validate;
use crate::error::{ApiError, ApiResult};
use crate::registry::{
    DeleteOptions, Deleted, Form, ListParams, WatchParams, WriteOptions, watch_line,
};
use crate::request::ResourcePath;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use r8s_api::catalog::{self, ResourceInfo};
use r8s_api::fieldvalidation::{FieldValidation, prune_and_check};
use r8s_api::selector::FieldSelector;
use r8s_api::table::IncludeObject;
use serde_json::{Value, json};
use std::time::Duration;

/// Everything a verb needs about the request.
pub struct Call {
    pub state: AppState,
    pub info: &'static ResourceInfo,
    pub target: ResourcePath,
    pub query: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub rep: Representation,
    pub include: IncludeObject,
    /// The authenticated (or impersonated) user making the request.
    pub user: crate::auth::UserInfo,
    /// The raw query string (the kubelet proxy needs repeated keys such as `command`).
    pub raw_query: Option<String>,
    /// The connection's upgrade handle, for exec/attach/portforward.
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Call {
    /// The namespace of the request (only for namespaced kinds).
    pub fn namespace(&self) -> Option<&str> {
        self.target
            .namespace
            .as_deref()
            .filter(|_| self.info.namespaced)
    }

    /// The object name (present for object URLs).
    pub fn name(&self) -> ApiResult<&str> {
        self.target
            .name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("", self.info.plural))
    }

    /// Write options from the query string.
    pub fn write_options(&self) -> ApiResult<WriteOptions> {
        Ok(WriteOptions {
            dry_run: self.query.dry_run()?,
        })
    }

    /// The request body as an object.
    pub fn body_object(&self) -> ApiResult<Value> {
        codec::decode_body(&self.headers, &self.body)
    }

    /// Render one object in the negotiated representation.
    pub fn respond(&self, code: StatusCode, obj: Value) -> Response {
        response::object(self.info, code, obj, self.rep, self.include)
    }

    /// Drop fields the kind's schema does not know; Strict makes them a 400, Warn returns
    /// them as warnings for the response.
    pub fn check_fields(&self, obj: &mut Value) -> ApiResult<Vec<String>> {
        let (strict, list) = self.unknown_fields(obj)?;
        if strict {
            let kind = self.info.kind;
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {kind}: strict decoding error: {}",
                self.info.version,
                list.join(", ")
            )));
        }
        Ok(list)
    }

    /// [`Call::check_fields`] for the result of a JSON, merge or strategic merge patch:
    /// upstream refuses unknown fields there with a 422 on the field `patch`.
    pub fn check_patched_fields(&self, obj: &mut Value) -> ApiResult<Vec<String>> {
        // The error quotes the whole patched object: only Strict can fail, so only then is
        // it worth serializing (objects can be hundreds of KB).
        let before = (self.query.get("fieldValidation") == Some("Strict")).then(|| obj.to_string());
        let (strict, list) = self.unknown_fields(obj)?;
        if strict {
            let detail = format!("strict decoding error: {}", list.join(", "));
            let before = before.unwrap_or_default();
            let cause = r8s_api::strategy::FieldError::invalid("patch", before.as_str(), &detail);
            return Err(ApiError::invalid("", "", "", &[cause]));
        }
        Ok(list)
    }

    /// Prune unknown fields; (whether Strict refuses them, `unknown field "x"` texts).
    fn unknown_fields(&self, obj: &mut Value) -> ApiResult<(bool, Vec<String>)> {
        let mode = FieldValidation::from_param(self.query.get("fieldValidation"))
            .map_err(ApiError::bad_request)?;
        let kind = self.info.kind;
        let found =
            prune_and_check(self.info.group, self.info.version, kind, obj).map_err(|e| {
                ApiError::bad_request(format!(
                    "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
                    self.info.version
                ))
            })?;
        if found.is_empty() || mode == FieldValidation::Ignore {
            return Ok((false, Vec::new()));
        }
        let list: Vec<String> = found
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        Ok((mode == FieldValidation::Strict, list))
    }
}

/// Attach `Warning: 299 - "…"` headers, as upstream does for fieldValidation=Warn.
pub fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
    resp
}

/// Route a resource request to its verb.
pub async fn handle(
    state: AppState,
    target: ResourcePath,
    req: Parts,
    body: Body,
) -> ApiResult<Response> {
    let info = catalog::find(&target.group, &target.version, &target.resource)
        .ok_or_else(|| ApiError::no_route(req.uri.path()))?;
    if target.namespace.is_some() && !info.namespaced {
        return Err(ApiError::no_route(req.uri.path()));
    }
    if let Some(ns) = &target.namespace
        && ns.is_empty()
    {
        return Err(ApiError::no_route(req.uri.path()));
    }
    let mut req = req;
    let upgrade = req.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let method = req.method.clone();
    let query = Query::parse(req.uri.query());
    let headers = req.headers.clone();
    let rep = codec::negotiate(&headers);
    let is_watch = target.legacy_watch || query.flag("watch");
    if target.subresource.is_none() {
        let verb = validate::verb(&method, target.name.is_some(), is_watch);
        validate::check_verb(info, &target, &method, verb)?;
    }
    let include = validate::include_object(&query, rep)?;
    let body = axum::body::to_bytes(body, codec::MAX_BODY_BYTES + 1)
        .await
        .map_err(|_| ApiError::too_large(codec::MAX_BODY_BYTES))?;
    if body.len() > codec::MAX_BODY_BYTES {
        return Err(ApiError::too_large(codec::MAX_BODY_BYTES));
    }
    if target.subresource.is_none() || method != Method::GET {
        validate::check_options(&query, &method, is_watch, &codec::content_type(&headers))?;
    }
    let mut target = target;
    if let Some(raw) = &target.name {
        target.name = Some(validate::object_name(raw)?);
    }
    let call = Call {
        state,
        info,
        target,
        query,
        headers,
        body,
        rep,
        include,
        user: req
            .extensions
            .get::<crate::auth::UserInfo>()
            .cloned()
            .unwrap_or_default(),
        raw_query: req.uri.query().map(str::to_string),
        upgrade,
    };
    if let Some(sub) = call.target.subresource.clone() {
        if call
            .info
            .subresource(sub.split('/').next().unwrap_or(""))
            .is_none()
        {
            return Err(ApiError::no_route(&sub));
        }
        return subresource::handle(call, &method, &sub).await;
    }
    if info.group.is_empty() && info.plural == "componentstatuses" && !is_watch {
        // Junk list options are refused as for every other list.
        list_params(&call)?;
        return match call.target.name.clone() {
            Some(name) => super::componentstatus::get(call, &name).await,
            None => super::componentstatus::list(call).await,
        };
    }
    if info.group == r8s_api::resource_metrics::GROUP {
        // Only get and list are served (the verb check refused the rest).
        return match call.target.name.clone() {
            Some(name) => super::metrics_api::get(call, &name).await,
            None => super::metrics_api::list(call).await,
        };
    }
    match (method, call.target.name.is_some()) {
        (Method::GET, false) if is_watch => watch(call).await,
        (Method::GET, true) if is_watch => watch(call).await,
        (Method::GET, false) => list(call).await,
        (Method::GET, true) => get(call).await,
        (Method::POST, false) => create(call).await,
        (Method::PUT, true) => update(call, None).await,
        (Method::PATCH, true) => patch(call, None).await,
        (Method::DELETE, true) => delete(call).await,
        (Method::DELETE, false) => delete_collection(call).await,
        (m, _) => Err(ApiError::method_not_allowed(m.as_str(), info.plural)),
    }
}

async fn get(call: Call) -> ApiResult<Response> {
    let obj = call
        .state
        .registry
        .get(call.info, call.namespace(), call.name()?)
        .await?;
    Ok(call.respond(StatusCode::OK, obj))
}

pub(super) fn list_params(call: &Call) -> ApiResult<ListParams> {
    let mut p = ListParams {
        limit: call.query.int("limit")?.unwrap_or(0).max(0),
        continue_token: call
            .query
            .get("continue")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        resource_version: call.query.get("resourceVersion").unwrap_or("").to_string(),
        resource_version_match: call
            .query
            .get("resourceVersionMatch")
            .unwrap_or("")
            .to_string(),
        ..Default::default()
    };
    // Parsed (and refused when junk) for lists too, as upstream decodes all ListOptions.
    call.query.int("timeoutSeconds")?;
    let mut field = call.query.get("fieldSelector").unwrap_or("").to_string();
    if !field.trim().is_empty() {
        let sel = FieldSelector::parse(&field).map_err(|e| ApiError::bad_request(e.to_string()))?;
        validate::check_field_selector(call.info, &sel)?;
        if let Some(name) = &call.target.name
            && sel.requires_exact_match("metadata.name") != Some(name.as_str())
        {
            return Err(ApiError::bad_request(
                "fieldSelector metadata.name doesn't match requested name",
            ));
        }
    } else if let Some(name) = &call.target.name {
        // A watch on one object is a watch with a name field selector.
        field = format!("metadata.name={}", r8s_api::selector::escape_value(name));
    }
    p.parse_selectors(call.query.get("labelSelector"), Some(&field))?;
    if p.continue_token.is_some() && !p.resource_version.is_empty() && p.resource_version != "0" {
        return Err(ApiError::bad_request(
            "specifying resource version is not allowed when using continue",
        ));
    }
    Ok(p)
}

async fn list(call: Call) -> ApiResult<Response> {
    let params = list_params(&call)?;
    let page = call
        .state
        .registry
        .list(call.info, call.namespace(), &params)
        .await?;
    Ok(response::list(call.info, page, call.rep, call.include))
}

async fn watch(call: Call) -> ApiResult<Response> {
    let params = list_params(&call)?;
    let timeout = match call.query.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        // A negative timeout has already expired (upstream's timer fires at once).
        Some(t) if t < 0 => Duration::ZERO,
        // Upstream picks a random timeout in [30m, 60m) so watchers spread their relists.
        _ => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let wp = WatchParams {
        bookmarks: call.query.flag("allowWatchBookmarks"),
        send_initial_events: call.query.flag("sendInitialEvents"),
        bookmark_interval: Some(Duration::from_secs(60)),
    };
    let events = call
        .state
        .registry
        .watch(call.info, call.namespace(), params, wp)
        .await?;
    let info = call.info;
    let rep = call.rep;
    let include = call.include;
    let mut first_table = true;
    let lines = events.map(move |ev| {
        let line = match rep {
            Representation::Table if ev.kind != "ERROR" && ev.kind != "BOOKMARK" => {
                let rv = ev
                    .value()
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let mut t = r8s_api::table::to_table(
                    info,
                    std::slice::from_ref(ev.value()),
                    include,
                    rv,
                    None,
                    chrono::Utc::now(),
                );
                // Column definitions travel with the first event only, as upstream.
                if !first_table {
                    t["columnDefinitions"] = json!([]);
                }
                first_table = false;
                watch_line(ev.kind, &serde_json::to_vec(&t).unwrap_or_default())
            }
            // Objects are shared by every watcher of a change, and so are their encodings.
            Representation::Metadata if ev.kind != "ERROR" => {
                let meta = ev.object.encoded(Form::Metadata, |obj| {
                    serde_json::to_vec(&response::partial_metadata(obj)).unwrap_or_default()
                });
                watch_line(ev.kind, meta)
            }
            _ => watch_line(ev.kind, ev.object.json()),
        };
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    let deadline = tokio::time::sleep(timeout);
    let lines = futures::stream::StreamExt::take_until(lines, deadline);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        Body::from_stream(lines),
    )
        .into_response())
}

async fn create(call: Call) -> ApiResult<Response> {
    if crate::authz::reviews::is_review(call.info) {
        // Reviews are answered from the request, never stored.
        return crate::authz::reviews::create(call).await;
    }
    let mut obj = call.body_object()?;
    let warnings = call.check_fields(&mut obj)?;
    record_requester(call.info, &mut obj, &call.user);
    FieldManager::new(&call).record(None, &mut obj, "");
    let opts = call.write_options()?;
    let created = call
        .state
        .registry
        .create(call.info, call.namespace(), obj, &opts)
        .await?;
    Ok(with_warnings(
        call.respond(StatusCode::CREATED, created),
        &warnings,
    ))
}

/// A CertificateSigningRequest names who asked: the authenticated user, whatever the body
/// claims (upstream's CSR strategy fills these from the request context). Every create
/// path calls it: POST and server-side apply (a PUT never creates a CSR).
fn record_requester(info: &ResourceInfo, obj: &mut Value, user: &crate::auth::UserInfo) {
    if !(info.group == "certificates.k8s.io" && info.kind == "CertificateSigningRequest") {
        return;
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("username".into(), json!(user.name));
    spec.insert("groups".into(), json!(user.groups));
    for (key, value) in [
        ("uid", (!user.uid.is_empty()).then(|| json!(user.uid))),
        ("extra", (!user.extra.is_empty()).then(|| json!(user.extra))),
    ] {
        match value {
            Some(v) => spec.insert(key.into(), v),
            None => spec.remove(key),
        };
    }
}

/// How often a PUT goes back and forth between update and create-on-update when other
/// writers keep creating and deleting the object (upstream's GuaranteedUpdate loops too).
const PUT_ATTEMPTS: usize = 8;

/// PUT of an object (or its status subresource). A PUT of a missing object creates it
/// (201) when the kind allows that (upstream's AllowCreateOnUpdate) and the user may
/// also `create`; otherwise it is a 404.
pub async fn update(call: Call, subresource: Option<&str>) -> ApiResult<Response> {
    let mut body = call.body_object()?;
    let warnings = call.check_fields(&mut body)?;
    let fields = FieldManager::new(&call);
    let opts = call.write_options()?;
    let name = call.name()?.to_string();
    let info = call.info;
    let may_create = subresource.is_none()
        && r8s_api::strategy::for_kind(info.group, info.kind).allow_create_on_update();
    for _ in 0..PUT_ATTEMPTS {
        let updated = call
            .state
            .registry
            .update_with(
                info,
                call.namespace(),
                &name,
                subresource,
                &opts,
                |current| {
                    let mut next = body.clone();
                    fields.record(Some(current), &mut next, subresource.unwrap_or(""));
                    Ok(next)
                },
            )
            .await;
        match updated {
            Err(e) if may_create && e.code == StatusCode::NOT_FOUND => {}
            other => {
                return Ok(with_warnings(
                    call.respond(StatusCode::OK, other?),
                    &warnings,
                ));
            }
        }
        crate::authz::authorize_create_on_update(&call.state.authz, &call.user, &call.target)
            .await?;
        let mut obj = body.clone();
        fields.record(None, &mut obj, "");
        let created = call
            .state
            .registry
            .create_on_update(info, call.namespace(), &name, obj, &opts)
            .await;
        match created {
            // Another writer created it meanwhile: update that one instead.
            Err(e) if e.reason == "AlreadyExists" => {}
            other => {
                return Ok(with_warnings(
                    call.respond(StatusCode::CREATED, other?),
                    &warnings,
                ));
            }
        }
    }
    Err(ApiError::conflict(info.group, info.plural, &name))
}

/// PATCH of an object (or its status subresource).
pub async fn patch(call: Call, subresource: Option<&str>) -> ApiResult<Response> {
    let ct = codec::content_type(&call.headers);
    let kind = r8s_api::patch::PatchType::from_content_type(&ct)
        .ok_or_else(|| ApiError::unsupported_media_type(&ct))?;
    let opts = call.write_options()?;
    let name = call.name()?.to_string();
    let info = call.info;
    if kind == r8s_api::patch::PatchType::Apply {
        // (fieldManager was checked with the other PatchOptions.)
        let mut applied = codec::decode_yaml(&call.body)?;
        let warnings = call.check_fields(&mut applied)?;
        if crate::meta::name(&applied) != name && !crate::meta::name(&applied).is_empty() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                crate::meta::name(&applied)
            )));
        }
        match call.state.registry.get(info, call.namespace(), &name).await {
            Err(e) if e.code == StatusCode::NOT_FOUND && subresource.is_none() => {
                let mut obj = FieldManager::new(&call).apply(None, &applied, "")?;
                record_requester(info, &mut obj, &call.user);
                crate::meta::metadata_mut(&mut obj).insert("name".into(), json!(name));
                let created = call
                    .state
                    .registry
                    .create(info, call.namespace(), obj, &opts)
                    .await?;
                return Ok(with_warnings(
                    call.respond(StatusCode::CREATED, created),
                    &warnings,
                ));
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    let merge_keys = r8s_api::patch::merge_keys_for(info.group, info.kind);
    let is_apply = kind == r8s_api::patch::PatchType::Apply;
    let body = if is_apply {
        call.body.clone()
    } else {
        codec::lossy_utf8(&call.body)
    };
    let mut warnings = Vec::new();
    let fields = FieldManager::new(&call);
    let sub = subresource.unwrap_or("");
    let updated = call
        .state
        .registry
        .update_with(
            info,
            call.namespace(),
            &name,
            subresource,
            &opts,
            |current| {
                let mut patched = if is_apply {
                    let applied = codec::decode_yaml(&body)?;
                    fields.apply(Some(current), &applied, sub)?
                } else {
                    let mut p = r8s_api::patch::apply_patch(kind, current, &body, &merge_keys)
                        .map_err(patch_error)?;
                    fields.record(Some(current), &mut p, sub);
                    p
                };
                warnings = if is_apply {
                    call.check_fields(&mut patched)?
                } else {
                    call.check_patched_fields(&mut patched)?
                };
                // A patch never changes the version the client is updating from unless it says so.
                if patched.pointer("/metadata/resourceVersion")
                    == current.pointer("/metadata/resourceVersion")
                    && let Some(m) = patched.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    m.remove("resourceVersion");
                }
                Ok(patched)
            },
        )
        .await?;
    Ok(with_warnings(
        call.respond(StatusCode::OK, updated),
        &warnings,
    ))
}

/// Map a patch failure to upstream's codes: malformed patches are 400, patches that
/// cannot be applied are 422.
pub fn patch_error(e: r8s_api::patch::PatchError) -> ApiError {
    if let r8s_api::patch::PatchError::Invalid(m) = &e {
        // Upstream's NewInvalid on the field `patch`, with its cause.
        let cause =
            r8s_api::strategy::FieldError::invalid("patch", &r8s_api::strategy::errors::Raw(m), "");
        return ApiError::invalid("", "", "", &[cause]);
    }
    let code = StatusCode::from_u16(e.status_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::from_parts(code, e.reason(), e.status_message())
}

fn delete_options(call: &Call) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        grace_period_seconds: call.query.int("gracePeriodSeconds")?,
        propagation_policy: call.query.get("propagationPolicy").map(str::to_string),
        dry_run: call.query.dry_run()?,
        ..Default::default()
    };
    if call.query.get("orphanDependents").is_some() {
        let orphan = call.query.flag("orphanDependents");
        opts.orphan_dependents = Some(orphan);
        if orphan {
            opts.propagation_policy = Some("Orphan".into());
        }
    }
    let mut body_dry_run = Vec::new();
    if !call.body.iter().all(u8::is_ascii_whitespace) {
        let body = codec::decode_body(&call.headers, &call.body)?;
        opts.merge_body(&body)?;
        if let Some(values) = body.get("dryRun").and_then(Value::as_array) {
            body_dry_run = values
                .iter()
                .map(|v| v.as_str().unwrap_or("").to_string())
                .collect();
        }
    }
    let errors = validate::delete_option_errors(
        opts.propagation_policy.as_deref(),
        body_dry_run.iter().map(String::as_str),
    );
    if !errors.is_empty() {
        return Err(super::query::invalid_options("DeleteOptions", &errors));
    }
    // Upstream treats a negative grace period as 1 second.
    if opts.grace_period_seconds.is_some_and(|g| g < 0) {
        opts.grace_period_seconds = Some(1);
    }
    Ok(opts)
}

async fn delete(call: Call) -> ApiResult<Response> {
    let opts = delete_options(&call)?;
    let name = call.name()?.to_string();
    match call
        .state
        .registry
        .delete(call.info, call.namespace(), &name, &opts)
        .await?
    {
        Deleted::Now(obj) => {
            if r8s_api::strategy::returns_deleted_object(call.info.group, call.info.kind) {
                Ok(call.respond(StatusCode::OK, obj))
            } else {
                Ok(response::deleted_status(call.info, &obj))
            }
        }
        // Upstream answers 202 only when the client asked for cascading deletion with the
        // deprecated `orphanDependents=false`; namespaces, graceful pod deletes and objects
        // held by finalizers get 200 with the object.
        Deleted::Pending(obj) if opts.orphan_dependents == Some(false) => {
            Ok(call.respond(StatusCode::ACCEPTED, obj))
        }
        Deleted::Pending(obj) => Ok(call.respond(StatusCode::OK, obj)),
    }
}

async fn delete_collection(call: Call) -> ApiResult<Response> {
    let opts = delete_options(&call)?;
    let params = list_params(&call)?;
    let page = call
        .state
        .registry
        .list(call.info, call.namespace(), &params)
        .await?;
    let mut deleted = Vec::new();
    for obj in page.items {
        let name = crate::meta::name(&obj).to_string();
        let ns = crate::meta::namespace(&obj).to_string();
        let ns = if call.info.namespaced {
            Some(ns.as_str())
        } else {
            None
        };
        match call
            .state
            .registry
            .delete(call.info, ns, &name, &opts)
            .await
        {
            Ok(Deleted::Now(o)) | Ok(Deleted::Pending(o)) => deleted.push(o),
            Err(e) if e.code == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(response::list(
        call.info,
        crate::registry::ListPage {
            items: deleted,
            resource_version: page.resource_version,
            continue_token: None,
            remaining: None,
        },
        Representation::Object,
        IncludeObject::Metadata,
    ))
}
