//! The one place that maps failures to Kubernetes `metav1.Status` responses.

use axum::http::StatusCode;
use r8s_api::strategy::FieldError;
use serde_json::{Value, json};

/// A request failure, rendered as a `Status` body with the upstream code and reason.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

/// `Result` whose error is an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// An error with an explicit code and reason (e.g. translated from a patch error).
    pub fn from_parts(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(code, reason, message)
    }

    fn with_details(mut self, mut details: Value) -> Self {
        // StatusDetails' string fields are `omitempty` upstream: the core group is absent,
        // not `""`.
        if let Value::Object(map) = &mut details {
            map.retain(|k, v| {
                !(matches!(k.as_str(), "name" | "group" | "kind" | "uid") && v.as_str() == Some(""))
            });
        }
        self.details = Some(details);
        self
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 NotFound for an object: `pods "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{qualified} \"{name}\" not found"),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 404 for a URL that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", "the server could not find the requested resource")
            .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": format!("404 page not found: {path}")}]}))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, resource)
            ),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }

    /// 409 Conflict with a free message (e.g. a terminating namespace).
    pub fn conflict_message(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(verb: &str, resource: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "the server does not allow this method on the requested resource ({verb} {resource})"
            ),
        )
    }

    /// 406 NotAcceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", message)
    }

    /// 410 Gone / Expired: the watch or continue resourceVersion was compacted.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"
            ),
        )
    }

    /// 422 Invalid with field causes: `Deployment.apps "x" is invalid: spec.replicas: …`.
    pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let summary: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        let summary = if summary.len() == 1 {
            summary.join("")
        } else {
            format!("[{}]", summary.join(", "))
        };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
            .collect();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
        )
        .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// 422 with a single message (e.g. a bad patch result).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message)
    }

    /// 429 TooManyRequests. A positive `retry_after_seconds` goes into the details and a
    /// `Retry-After` header (clients such as client-go then retry by themselves); 0
    /// leaves the retry to the caller, as upstream's `NewTooManyRequests`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        let details = if retry_after_seconds > 0 {
            json!({"retryAfterSeconds": retry_after_seconds})
        } else {
            json!({})
        };
        Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", message).with_details(details)
    }

    /// Add a `StatusCause` (`reason` is the cause type, e.g. `DisruptionBudget`).
    pub fn with_cause(mut self, reason: &str, message: impl Into<String>) -> Self {
        let details = self.details.get_or_insert_with(|| json!({}));
        if let Value::Object(map) = details {
            let causes = map.entry("causes").or_insert_with(|| json!([]));
            if let Value::Array(list) = causes {
                list.push(json!({"reason": reason, "message": message.into()}));
            }
        }
        self
    }

    /// A bare failure with `code` and `message` and no reason (upstream `Status` objects
    /// returned as the result of a request, e.g. eviction's several-budgets answer).
    pub fn failure(code: StatusCode, message: impl Into<String>) -> Self {
        Self::new(code, "", message)
    }

    /// The `Retry-After` delay the details ask for, if any.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 ServiceUnavailable (store down).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// 504 Timeout.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "Timeout", message)
    }

    /// The `metav1.Status` body.
    pub fn status_body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        // `reason` is omitempty upstream.
        if self.reason.is_empty()
            && let Some(m) = status.as_object_mut()
        {
            m.remove("reason");
        }
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

/// `deployments.apps` or `pods`.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl From<r8s_store::Error> for ApiError {
    fn from(e: r8s_store::Error) -> Self {
        use r8s_store::Error as E;
        match e {
            E::Compacted { .. } => ApiError::gone(format!("too old resource version: {e}")),
            E::FutureRevision(_) => ApiError::timeout(format!("Too large resource version: {e}")),
            E::Unavailable(_) | E::DiskFull(_) => ApiError::unavailable(e.to_string()),
            E::InvalidArgument(m) => ApiError::bad_request(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::to_vec(&self.status_body()).unwrap_or_default();
        let mut resp = (
            self.code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after_seconds() {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}
