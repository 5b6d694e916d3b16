//! Dynamic admission: the MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins
//! (upstream's `admission/plugin/webhook`). Webhooks configured by
//! Mutating/ValidatingWebhookConfigurations ([`cache`]) are matched against each write
//! ([`matching`], plus namespace and object selectors here), sent an AdmissionReview
//! ([`review`], [`call`]) and their verdict applied:
//!
//! - mutating webhooks run one after another after r8s's built-in mutating admission and
//!   defaulting; a JSONPatch answer changes the object; `reinvocationPolicy: IfNeeded`
//!   webhooks are called a second time when a later webhook changed the object (built-in
//!   plugins are not re-run);
//! - validating webhooks run concurrently after validation, before the object is stored;
//! - a denial is the webhook's status (`admission webhook "<name>" denied the request:
//!   …`); a webhook that cannot be called fails the request with a 500 unless its
//!   `failurePolicy` is `Ignore`; a dry run may only reach webhooks without side effects.
//!
//! Webhooks see requests, not the server's own bookkeeping: a write is admitted only when
//! it is the write the current API request addresses (the request's resource and
//! subresource, see [`RequestScope`]), so quota status charges, bootstrap objects and
//! objects deleted with their CRD reach no webhook. `matchConditions` (CEL, see
//! [`r8s_api::cel::admission`]) are evaluated after rules and selectors: a false one skips
//! the webhook; an error fails the request with a 403 unless `failurePolicy` is `Ignore`
//! (then the webhook is skipped). `scale`, `binding` and `eviction` subresource requests,
//! whose bodies the registry never sees, reach no webhook.
//!
//! ValidatingAdmissionPolicies (`registry/admission/policy/`) share this module's request
//! scope, caches and matching, and run in the validating phase before the webhooks.

pub(super) mod cache;
mod call;
pub(super) mod config;
pub(super) mod matching;
mod review;

use super::policy::config::{Binding, Policy};
use super::{DeleteOptions, Registry};
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::request::ResourcePath;
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::Response;
use cache::{ConfigCache, Configured, ItemList};
use config::{Hook, HookKind};
use matching::Operation;
use r8s_api::catalog::ResourceInfo;
use r8s_api::cel::admission::{self as cel, Activation, Input};
use r8s_api::patch::PatchError;
use r8s_api::selector::LabelSelector;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The dynamic admission configurations of one registry (shared by its clones): webhook
/// configurations, ValidatingAdmissionPolicies and their bindings.
pub(crate) struct Webhooks {
    pub(super) mutating: Arc<ConfigCache<Hook>>,
    pub(super) validating: Arc<ConfigCache<Hook>>,
    pub(super) policies: Arc<ConfigCache<Policy>>,
    pub(super) bindings: Arc<ConfigCache<Binding>>,
    configured: Configured,
    /// Whether every cache follows the store (each lists before it may report being
    /// empty, so all must follow for writes to stop paying once nothing is configured).
    following: AtomicBool,
}

fn mutating_hooks(config: &Value) -> Vec<Arc<Hook>> {
    config::hooks_of(HookKind::Mutating, config)
}

fn validating_hooks(config: &Value) -> Vec<Arc<Hook>> {
    config::hooks_of(HookKind::Validating, config)
}

impl Webhooks {
    #[allow(clippy::expect_used)]
    pub(crate) fn new() -> Self {
        let find = |plural| {
            r8s_api::catalog::find("admissionregistration.k8s.io", "v1", plural)
                .expect("admissionregistration.k8s.io/v1 is in the catalog")
        };
        let configured = Configured::new();
        Webhooks {
            mutating: Arc::new(ConfigCache::new(
                find("mutatingwebhookconfigurations"),
                mutating_hooks,
                &configured,
                1,
            )),
            validating: Arc::new(ConfigCache::new(
                find("validatingwebhookconfigurations"),
                validating_hooks,
                &configured,
                2,
            )),
            policies: Arc::new(ConfigCache::new(
                find("validatingadmissionpolicies"),
                Policy::compile,
                &configured,
                4,
            )),
            bindings: Arc::new(ConfigCache::new(
                find("validatingadmissionpolicybindings"),
                Binding::compile,
                &configured,
                8,
            )),
            configured,
            following: AtomicBool::new(false),
        }
    }

    /// Starts following every configuration kind, once: called before any cache is read.
    pub(super) fn follow(&self, store: &r8s_store::DynStore) {
        if self.following.load(Ordering::Acquire) || self.following.swap(true, Ordering::AcqRel) {
            return;
        }
        self.mutating.follow(store);
        self.validating.follow(store);
        self.policies.follow(store);
        self.bindings.follow(store);
    }

    /// Whether a webhook or policy may be configured (false only when certainly none
    /// is): one atomic load.
    pub(crate) fn any(&self) -> bool {
        self.configured.any()
    }

    /// Whether a policy may apply (false when certainly no binding or no policy exists).
    fn policies_may_apply(&self) -> bool {
        !self.bindings.is_empty() && !self.policies.is_empty()
    }

    /// This server committed a write of `info` at `rev`: configuration writes must be seen
    /// by the caches before they answer again.
    pub(crate) fn wrote(&self, info: &ResourceInfo, rev: i64) {
        if info.group != "admissionregistration.k8s.io" {
            return;
        }
        if self.mutating.caches(info) {
            self.mutating.wrote(rev);
        }
        if self.validating.caches(info) {
            self.validating.wrote(rev);
        }
        if self.policies.caches(info) {
            self.policies.wrote(rev);
        }
        if self.bindings.caches(info) {
            self.bindings.wrote(rev);
        }
    }
}

/// The API request being served, for webhooks: who asks, what it addresses, and the
/// warnings webhooks return for its answer.
pub(super) struct RequestContext {
    user: UserInfo,
    group: String,
    resource: String,
    subresource: Option<String>,
    field_manager: Option<String>,
    warnings: Mutex<Vec<String>>,
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs a resource request with what admission webhooks need to know about it (the
/// authenticated user, the addressed resource), and adds their warnings to its answer as
/// `Warning` headers. Reads (GET) carry nothing.
pub struct RequestScope(Option<Arc<RequestContext>>);

impl RequestScope {
    /// No scope: what requests get while no webhook is configured, so they pay nothing.
    pub fn none() -> Self {
        RequestScope(None)
    }

    /// The scope of the request `parts` addressing `target`.
    pub fn of(parts: &Parts, target: &ResourcePath) -> Self {
        if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return RequestScope(None);
        }
        let field_manager = parts.uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "fieldManager")
                .map(|(_, v)| v.into_owned())
        });
        RequestScope(Some(Arc::new(RequestContext {
            user: parts
                .extensions
                .get::<UserInfo>()
                .cloned()
                .unwrap_or_default(),
            group: target.group.clone(),
            resource: target.resource.clone(),
            subresource: target.subresource.clone(),
            field_manager,
            warnings: Mutex::new(Vec::new()),
        })))
    }

    /// Serves the request within the scope; webhook warnings are added to its answer,
    /// a failure's too (upstream writes them whatever the outcome).
    pub async fn run<F>(self, serve: F) -> ApiResult<Response>
    where
        F: Future<Output = ApiResult<Response>>,
    {
        let Some(ctx) = self.0 else {
            return serve.await;
        };
        let answer = REQUEST.scope(ctx.clone(), serve).await;
        let warnings = ctx
            .warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default();
        if warnings.is_empty() {
            return answer;
        }
        let answer = answer.unwrap_or_else(axum::response::IntoResponse::into_response);
        Ok(crate::handlers::resource::with_warnings(answer, &warnings))
    }
}

impl RequestContext {
    pub(super) fn warn(&self, warnings: Vec<String>) {
        if warnings.is_empty() {
            return;
        }
        if let Ok(mut list) = self.warnings.lock() {
            for w in warnings {
                if !w.is_empty() && !list.contains(&w) {
                    list.push(w);
                }
            }
        }
    }
}

/// The current request, if the write at hand is the one it addresses.
fn request_for(info: &ResourceInfo, subresource: Option<&str>) -> Option<Arc<RequestContext>> {
    let ctx = REQUEST.try_with(Arc::clone).ok()?;
    let addressed = ctx.group == info.group
        && ctx.resource == info.plural
        && ctx.subresource.as_deref() == subresource
        // A binding is a create of a Binding: its body never reaches the registry.
        && subresource != Some("binding");
    addressed.then_some(ctx)
}

/// One write as admission sees it.
pub(crate) struct Attrs<'a> {
    pub(super) op: Operation,
    pub(super) info: &'static ResourceInfo,
    namespace: Option<&'a str>,
    pub(super) subresource: Option<&'a str>,
    dry_run: bool,
    delete: Option<&'a DeleteOptions>,
    /// Objects are in storage form (create/update) rather than served form (delete).
    stored: bool,
}

impl<'a> Attrs<'a> {
    pub(crate) fn create(
        info: &'static ResourceInfo,
        namespace: Option<&'a str>,
        dry_run: bool,
    ) -> Self {
        Attrs {
            op: Operation::Create,
            info,
            namespace,
            subresource: None,
            dry_run,
            delete: None,
            stored: true,
        }
    }

    pub(crate) fn update(
        info: &'static ResourceInfo,
        namespace: Option<&'a str>,
        subresource: Option<&'a str>,
        dry_run: bool,
    ) -> Self {
        Attrs {
            op: Operation::Update,
            subresource,
            ..Attrs::create(info, namespace, dry_run)
        }
    }

    pub(crate) fn delete(
        info: &'static ResourceInfo,
        namespace: Option<&'a str>,
        opts: &'a DeleteOptions,
    ) -> Self {
        Attrs {
            op: Operation::Delete,
            delete: Some(opts),
            stored: false,
            ..Attrs::create(info, namespace, opts.dry_run)
        }
    }

    /// The request's namespace as upstream's attributes carry it: a Namespace's own name
    /// for requests on an existing Namespace.
    pub(super) fn namespace<'s>(&'s self, name: &'s str) -> &'s str {
        if matching::is_namespaces(self.info) && self.op != Operation::Create {
            return name;
        }
        self.namespace
            .filter(|_| self.info.namespaced)
            .unwrap_or("")
    }

    /// The review's request fields for a call or evaluation at `target`.
    fn fields<'s>(
        &'s self,
        ctx: &RequestContext,
        target: &'static ResourceInfo,
        name: &'s str,
        uid: &'s str,
    ) -> review::RequestFields<'s> {
        let subresource = self.subresource.unwrap_or("");
        let (kg, kv, kk) = matching::kind_of(target, subresource);
        let (rg, rv, rk) = matching::kind_of(self.info, subresource);
        review::RequestFields {
            uid,
            kind: review::Gvk(kg, kv, kk),
            resource: review::Gvk(target.group, target.version, target.plural),
            subresource,
            request_kind: review::Gvk(rg, rv, rk),
            request_resource: review::Gvk(self.info.group, self.info.version, self.info.plural),
            name,
            namespace: self.namespace(name),
            operation: self.op.as_str(),
            user: ctx.user.to_json(),
            dry_run: self.dry_run,
            options: self.options(ctx),
        }
    }

    /// `request` as CEL expressions see it when matched at `target`.
    pub(super) fn cel_request(
        &self,
        ctx: &RequestContext,
        target: &'static ResourceInfo,
        name: &str,
    ) -> Value {
        Value::Object(review::admission_request(
            &self.fields(ctx, target, name, ""),
        ))
    }

    /// `CreateOptions` / `UpdateOptions` / `DeleteOptions` as sent in the review.
    fn options(&self, ctx: &RequestContext) -> Value {
        let kind = match self.op {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
        };
        let mut options = json!({"apiVersion": "meta.k8s.io/v1", "kind": kind});
        if self.dry_run {
            options["dryRun"] = json!(["All"]);
        }
        if self.op != Operation::Delete
            && let Some(fm) = &ctx.field_manager
        {
            options["fieldManager"] = json!(fm);
        }
        if let Some(d) = self.delete {
            if let Some(g) = d.grace_period_seconds {
                options["gracePeriodSeconds"] = json!(g);
            }
            if let Some(p) = &d.propagation_policy {
                options["propagationPolicy"] = json!(p);
            }
            if let Some(o) = d.orphan_dependents {
                options["orphanDependents"] = json!(o);
            }
            let mut pre = serde_json::Map::new();
            if let Some(uid) = &d.precondition_uid {
                pre.insert("uid".into(), json!(uid));
            }
            if let Some(rv) = &d.precondition_resource_version {
                pre.insert("resourceVersion".into(), json!(rv));
            }
            if !pre.is_empty() {
                options["preconditions"] = Value::Object(pre);
            }
        }
        options
    }
}

/// The objects of one admission call.
pub(super) struct Objects<'a> {
    pub(super) object: Option<&'a Value>,
    pub(super) old: Option<&'a Value>,
}

impl Objects<'_> {
    pub(super) fn name(&self) -> &str {
        self.object.or(self.old).map(meta::name).unwrap_or("")
    }

    /// Upstream's object selector match: the new object's labels or the old one's.
    pub(super) fn selected_by(&self, selector: &LabelSelector) -> bool {
        if selector.is_empty() {
            return true;
        }
        let matches = |o: Option<&Value>| o.is_some_and(|o| selects(selector, o));
        matches(self.object) || matches(self.old)
    }
}

/// A webhook could not be called, or answered something unusable: its failure policy
/// decides. Anything else is final.
enum Failure {
    Calling(String),
    Final(ApiError),
}

impl Registry {
    /// Mutating admission webhooks on a create or update of `obj` (storage form).
    pub(crate) async fn mutating_webhooks(
        &self,
        attrs: &Attrs<'_>,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        // One atomic load while nothing is configured.
        if !self.webhooks.any() || self.webhooks.mutating.is_empty() {
            return Ok(());
        }
        let Some(ctx) = request_for(attrs.info, attrs.subresource) else {
            return Ok(());
        };
        self.run_mutating(attrs, &ctx, Some(obj), old).await
    }

    /// Validating admission on a create or update of `obj` (storage form):
    /// ValidatingAdmissionPolicies, then validating webhooks.
    pub(crate) async fn validating_webhooks(
        &self,
        attrs: &Attrs<'_>,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        // One atomic load while nothing is configured.
        if !self.webhooks.any() {
            return Ok(());
        }
        let policies = self.webhooks.policies_may_apply();
        if !policies && self.webhooks.validating.is_empty() {
            return Ok(());
        }
        let Some(ctx) = request_for(attrs.info, attrs.subresource) else {
            return Ok(());
        };
        let objects = Objects {
            object: Some(obj),
            old,
        };
        if policies {
            self.run_policies(attrs, &ctx, &objects).await?;
        }
        if self.webhooks.validating.is_empty() {
            return Ok(());
        }
        self.run_validating(attrs, &ctx, &objects).await
    }

    /// Every admission phase for a delete of `current` (served form): mutating webhooks,
    /// policies, validating webhooks.
    pub(crate) async fn delete_webhooks(
        &self,
        attrs: &Attrs<'_>,
        current: &Value,
    ) -> ApiResult<()> {
        if !self.webhooks.any() {
            return Ok(());
        }
        let Some(ctx) = request_for(attrs.info, attrs.subresource) else {
            return Ok(());
        };
        if !self.webhooks.mutating.is_empty() {
            self.run_mutating(attrs, &ctx, None, Some(current)).await?;
        }
        let objects = Objects {
            object: None,
            old: Some(current),
        };
        if self.webhooks.policies_may_apply() {
            self.run_policies(attrs, &ctx, &objects).await?;
        }
        if !self.webhooks.validating.is_empty() {
            self.run_validating(attrs, &ctx, &objects).await?;
        }
        Ok(())
    }

    async fn hooks(&self, kind: HookKind, info: &ResourceInfo) -> ApiResult<ItemList<Hook>> {
        if matching::exempt(info) {
            return Ok(Vec::new().into());
        }
        self.webhooks.follow(&self.store);
        let cache = match kind {
            HookKind::Mutating => &self.webhooks.mutating,
            HookKind::Validating => &self.webhooks.validating,
        };
        cache.items(&self.store).await
    }

    async fn run_mutating(
        &self,
        attrs: &Attrs<'_>,
        ctx: &RequestContext,
        mut obj: Option<&mut Value>,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let hooks = self.hooks(HookKind::Mutating, attrs.info).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let mut labels = NamespaceObject::default();
        // How often the object changed, and (for IfNeeded webhooks) how often it had when
        // each was last called: a webhook is called again if a later one changed it.
        let mut changes = 0u64;
        let mut seen_at: Vec<Option<u64>> = vec![None; hooks.len()];
        for round in 0..2 {
            for (i, hook) in hooks.iter().enumerate() {
                if round == 1 && seen_at[i].is_none_or(|seen| seen >= changes) {
                    continue;
                }
                let objects = Objects {
                    object: obj.as_deref(),
                    old,
                };
                let Some(target) = self
                    .should_call(hook, attrs, ctx, &objects, &mut labels)
                    .await?
                else {
                    continue;
                };
                let changed = match self
                    .call_mutating(hook, target, attrs, ctx, obj.as_deref_mut(), old)
                    .await
                {
                    Ok(changed) => changed,
                    Err(Failure::Final(e)) => return Err(e),
                    Err(Failure::Calling(reason)) => fail(hook, &reason)?,
                };
                if changed {
                    changes += 1;
                }
                if hook.reinvoke_if_needed {
                    seen_at[i] = Some(changes);
                }
            }
            if !seen_at.iter().any(|s| s.is_some_and(|seen| seen < changes)) {
                break;
            }
        }
        if let Some(obj) = obj.as_deref()
            && attrs.op == Operation::Create
            && attrs.info.namespaced
            && meta::namespace(obj) != attrs.namespace.unwrap_or("")
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Ok(())
    }

    /// One mutating call; whether it changed the object.
    async fn call_mutating(
        &self,
        hook: &Hook,
        target: &'static ResourceInfo,
        attrs: &Attrs<'_>,
        ctx: &RequestContext,
        obj: Option<&mut Value>,
        old: Option<&Value>,
    ) -> Result<bool, Failure> {
        let sent = obj.as_deref().map(|o| view(attrs, target, o));
        let objects = Objects {
            object: obj.as_deref(),
            old,
        };
        let answer = self
            .invoke(hook, target, attrs, ctx, &objects, sent.clone())
            .await?;
        let Some(patch) = answer.patch else {
            return Ok(false);
        };
        let ops = r8s_api::patch::json::decode_json_patch(&patch).map_err(|e| {
            Failure::Calling(format!(
                "received undecodable patch in webhook response: {e}"
            ))
        })?;
        if ops.is_empty() {
            return Ok(false);
        }
        let (Some(obj), Some(sent)) = (obj, sent) else {
            return Err(Failure::Final(ApiError::internal(format!(
                "admission webhook \"{}\" attempted to modify the object, which is not supported for this operation",
                hook.name
            ))));
        };
        let mut patched =
            r8s_api::patch::json::apply_json_patch(&sent, &patch).map_err(|e| match e {
                PatchError::BadRequest(m) => Failure::Calling(format!(
                    "received undecodable patch in webhook response: {m}"
                )),
                other => Failure::Final(ApiError::internal(other.detail().to_string())),
            })?;
        if !patched.is_object() {
            return Err(Failure::Final(ApiError::internal(format!(
                "admission webhook \"{}\" patched the object into a non-object",
                hook.name
            ))));
        }
        if patched == sent {
            return Ok(false);
        }
        r8s_api::conversion::to_storage(target, &mut patched);
        // The object keeps the type it was written as.
        if let (Some(map), Some(before)) = (patched.as_object_mut(), obj.as_object()) {
            for k in ["apiVersion", "kind"] {
                match before.get(k) {
                    Some(v) => map.insert(k.into(), v.clone()),
                    None => map.remove(k),
                };
            }
        }
        *obj = patched;
        Ok(true)
    }

    async fn run_validating(
        &self,
        attrs: &Attrs<'_>,
        ctx: &RequestContext,
        objects: &Objects<'_>,
    ) -> ApiResult<()> {
        let hooks = self.hooks(HookKind::Validating, attrs.info).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let mut labels = NamespaceObject::default();
        let mut calls = Vec::new();
        for hook in hooks.iter() {
            if let Some(target) = self
                .should_call(hook, attrs, ctx, objects, &mut labels)
                .await?
            {
                calls.push((hook, target));
            }
        }
        let results = futures::future::join_all(calls.iter().map(|&(hook, target)| async move {
            let sent = objects.object.map(|o| view(attrs, target, o));
            match self.invoke(hook, target, attrs, ctx, objects, sent).await {
                Ok(_) => Ok(()),
                Err(Failure::Final(e)) => Err(e),
                Err(Failure::Calling(reason)) => fail(hook, &reason),
            }
        }))
        .await;
        // The first refusal in webhook order (upstream reports whichever came first).
        results.into_iter().collect()
    }

    /// Sends the review and reads the verdict: a denial is final, warnings go to the
    /// answer.
    async fn invoke(
        &self,
        hook: &Hook,
        target: &'static ResourceInfo,
        attrs: &Attrs<'_>,
        ctx: &RequestContext,
        objects: &Objects<'_>,
        sent: Option<Value>,
    ) -> Result<review::Answer, Failure> {
        if attrs.dry_run && !hook.dry_run_safe() {
            if hook.side_effects.is_none() {
                return Err(Failure::Calling("Webhook SideEffects is nil".into()));
            }
            return Err(Failure::Final(review::dry_run_unsupported(&hook.name)));
        }
        let version = review::review_version(&hook.review_versions).map_err(Failure::Calling)?;
        let uid = uuid::Uuid::new_v4().to_string();
        let fields = attrs.fields(ctx, target, objects.name(), &uid);
        let old = objects.old.map(|o| view(attrs, target, o));
        let body = review::request(version, &fields, sent, old);
        let body = serde_json::to_vec(&body)
            .map_err(|e| Failure::Final(ApiError::internal(e.to_string())))?;
        let answer = call::post(self, hook, body)
            .await
            .map_err(Failure::Calling)?;
        let mutating = hook.kind == HookKind::Mutating;
        let answer = review::verify(&uid, version, mutating, &answer).map_err(Failure::Calling)?;
        ctx.warn(answer.warnings.clone());
        if !answer.allowed {
            return Err(Failure::Final(review::denial(
                &hook.name,
                answer.status.as_ref(),
            )));
        }
        Ok(answer)
    }

    /// The version to call `hook` with, if it applies to this write (rules, then object
    /// and namespace selectors, then match conditions, as upstream's `ShouldCallHook`).
    async fn should_call(
        &self,
        hook: &Hook,
        attrs: &Attrs<'_>,
        ctx: &RequestContext,
        objects: &Objects<'_>,
        ns: &mut NamespaceObject,
    ) -> ApiResult<Option<&'static ResourceInfo>> {
        let name = objects.name();
        let req = matching::Request {
            op: attrs.op,
            info: attrs.info,
            subresource: attrs.subresource.unwrap_or(""),
            namespace: attrs.namespace(name),
            name,
        };
        let Some(target) = matching::invocation(&hook.rules, hook.equivalent, &req) else {
            return Ok(None);
        };
        let object_selector = hook
            .object_selector
            .as_ref()
            .map_err(|e| ApiError::internal(e.clone()))?;
        if !objects.selected_by(object_selector) {
            return Ok(None);
        }
        let namespace_selector = hook
            .namespace_selector
            .as_ref()
            .map_err(|e| ApiError::internal(e.clone()))?;
        if !self
            .namespace_selected(namespace_selector, &req, objects, ns)
            .await?
        {
            return Ok(None);
        }
        if hook.match_conditions.is_empty() {
            return Ok(Some(target));
        }
        let object = objects.object.map(|o| view(attrs, target, o));
        let old = objects.old.map(|o| view(attrs, target, o));
        let request = attrs.cel_request(ctx, target, name);
        let input = Input {
            object: object.as_ref(),
            old_object: old.as_ref(),
            request: Some(&request),
            ..Input::default()
        };
        let act = Activation::new(&input, &[]);
        match cel::match_conditions(&hook.match_conditions, &act) {
            Ok(true) => Ok(Some(target)),
            Ok(false) => Ok(None),
            Err(e) if hook.ignore_failures => {
                tracing::warn!(
                    webhook = %hook.name, error = %e,
                    "failed evaluating match conditions, failing open"
                );
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(
                    webhook = %hook.name, error = %e,
                    "failed evaluating match conditions, failing closed"
                );
                Err(super::policy::forbidden(
                    attrs.info,
                    name,
                    &e,
                    axum::http::StatusCode::FORBIDDEN,
                    "Forbidden",
                ))
            }
        }
    }

    /// Whether a namespace selector selects the request (upstream's namespace matcher):
    /// cluster-scoped objects other than Namespaces always; a Namespace by its own labels
    /// (the old ones on delete); anything else by its namespace's labels.
    pub(super) async fn namespace_selected(
        &self,
        selector: &LabelSelector,
        req: &matching::Request<'_>,
        objects: &Objects<'_>,
        ns: &mut NamespaceObject,
    ) -> ApiResult<bool> {
        if selector.is_empty() || (!req.is_namespace_resource() && req.namespace.is_empty()) {
            return Ok(true);
        }
        let labels = if req.is_namespace_resource() {
            objects
                .object
                .or(objects.old)
                .and_then(|o| o.pointer("/metadata/labels"))
                .cloned()
        } else {
            ns.get(self, req.namespace)
                .await?
                .pointer("/metadata/labels")
                .cloned()
        };
        Ok(selector.matches(labels.as_ref().unwrap_or(&Value::Null)))
    }
}

/// The request's Namespace, read once per admission phase.
#[derive(Default)]
pub(super) struct NamespaceObject(Option<Value>);

impl NamespaceObject {
    pub(super) async fn get(&mut self, registry: &Registry, namespace: &str) -> ApiResult<&Value> {
        if self.0.is_none() {
            let ns = registry
                .get(super::builtin("namespaces"), None, namespace)
                .await?;
            self.0 = Some(ns);
        }
        self.0
            .as_ref()
            .ok_or_else(|| ApiError::internal("namespace not read"))
    }
}

fn selects(selector: &LabelSelector, obj: &Value) -> bool {
    selector.matches(obj.pointer("/metadata/labels").unwrap_or(&Value::Null))
}

/// A webhook call failed: with `failurePolicy: Ignore` the request goes on without it.
fn fail<T: Default>(hook: &Hook, reason: &str) -> ApiResult<T> {
    if hook.ignore_failures {
        tracing::warn!(
            configuration = %hook.configuration, webhook = %hook.name, error = %reason,
            "failed calling webhook, failing open"
        );
        return Ok(T::default());
    }
    tracing::warn!(
        configuration = %hook.configuration, webhook = %hook.name, error = %reason,
        "failed calling webhook, failing closed"
    );
    Err(review::calling_failed(&hook.name, reason))
}

/// `obj` as the webhook gets it: in `target`'s version, with its apiVersion and kind.
pub(super) fn view(attrs: &Attrs<'_>, target: &ResourceInfo, obj: &Value) -> Value {
    let mut v = obj.clone();
    if !attrs.stored {
        r8s_api::conversion::to_storage(attrs.info, &mut v);
    }
    super::set_type_meta(target, &mut v);
    v
}

#[cfg(test)]
mod tests;
