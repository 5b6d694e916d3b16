//! `authentication.k8s.io/v1` reviews, answered and never stored: TokenReview (is this
//! token valid, and whose is it) and SelfSubjectReview (`kubectl auth whoami`).

use super::{AUTHENTICATED, MASTERS, UserInfo, constant_time_eq};
use crate::error::{ApiError, ApiResult};
use crate::handlers::resource::Call;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

/// The request body, typed as `kind` of `authentication.k8s.io/v1`, with empty metadata.
pub(crate) fn review_body(call: &Call) -> ApiResult<Value> {
    let mut body = if call.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        call.body_object()?
    };
    let kind = call.info.kind;
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != kind
    {
        return Err(ApiError::bad_request(format!(
            "the body of the request was of kind {k:?}, expected {kind}"
        )));
    }
    if !body.is_object() {
        return Err(ApiError::bad_request(format!("{kind} must be an object")));
    }
    body["apiVersion"] = json!(call.info.api_version());
    body["kind"] = json!(kind);
    let meta = body.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut meta = if meta.is_object() { meta } else { json!({}) };
    meta["creationTimestamp"] = Value::Null;
    body["metadata"] = meta;
    Ok(body)
}

/// `POST /apis/authentication.k8s.io/v1/tokenreviews`.
pub async fn token_review(call: Call) -> ApiResult<Response> {
    let mut review = review_body(&call)?;
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let state = &call.state;
    let mut audiences: Vec<String> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = state.tokens.api_audiences().to_vec();
    }
    let result =
        if !state.token.is_empty() && constant_time_eq(token.as_bytes(), state.token.as_bytes()) {
            // The join token is valid for the API server's audiences only.
            let api = state.tokens.api_audiences();
            let matched: Vec<String> = audiences
                .iter()
                .filter(|a| api.contains(a))
                .cloned()
                .collect();
            if matched.is_empty() {
                Err(format!(
                    "token audiences {api:?} is invalid for the target audiences {audiences:?}"
                ))
            } else {
                let user = UserInfo::new(
                    crate::tls::TOKEN_USER,
                    vec![MASTERS.into(), AUTHENTICATED.into()],
                );
                Ok((user, matched))
            }
        } else {
            state
                .tokens
                .review(&state.registry, &token, &audiences)
                .await
        };
    review["status"] = match result {
        Ok((user, auds)) => {
            json!({"authenticated": true, "user": user.to_json(), "audiences": auds})
        }
        Err(e) => json!({"authenticated": false, "user": {}, "error": e}),
    };
    Ok(call.respond(StatusCode::CREATED, review))
}

/// `POST /apis/authentication.k8s.io/v1/selfsubjectreviews`: the caller's own user.
pub async fn self_subject_review(call: Call) -> ApiResult<Response> {
    let mut review = review_body(&call)?;
    review["status"] = json!({"userInfo": call.user.to_json()});
    Ok(call.respond(StatusCode::CREATED, review))
}
