//! Query and path parameters of the REST operations, described in r8s's own words.

use serde_json::{Value, json};

/// One query parameter: name, JSON type, description.
pub(super) type Param = (&'static str, &'static str, &'static str);

pub(super) const PRETTY: Param = (
    "pretty",
    "string",
    "If 'true', the output is pretty printed.",
);
pub(super) const DRY_RUN: Param = (
    "dryRun",
    "string",
    "When present, modifications are not persisted. Valid value: All (run every stage).",
);
pub(super) const FIELD_MANAGER: Param = (
    "fieldManager",
    "string",
    "Name of the actor making the change; required for apply patches.",
);
pub(super) const FIELD_VALIDATION: Param = (
    "fieldValidation",
    "string",
    "How the server treats unknown or duplicate fields in the body: Ignore (drop them \
     silently), Warn (drop them with a warning header; the default) or Strict (reject the \
     request).",
);
pub(super) const FORCE: Param = (
    "force",
    "boolean",
    "Re-acquire fields owned by other managers in an apply patch. Only for apply patches.",
);
pub(super) const WRITE: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
pub(super) const PATCHING: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
pub(super) const DELETING: &[Param] = &[
    DRY_RUN,
    (
        "gracePeriodSeconds",
        "integer",
        "Seconds before the object is deleted; 0 means now.",
    ),
    (
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "boolean",
        "Delete an object that cannot be read from storage, skipping finalizers.",
    ),
    (
        "orphanDependents",
        "boolean",
        "Deprecated: use propagationPolicy.",
    ),
    (
        "propagationPolicy",
        "string",
        "Garbage collection of dependents: Orphan, Background or Foreground.",
    ),
];
pub(super) const LISTING: &[Param] = &[
    (
        "allowWatchBookmarks",
        "boolean",
        "Ask for BOOKMARK watch events.",
    ),
    (
        "continue",
        "string",
        "Token from a previous limited list, to fetch the next chunk.",
    ),
    (
        "fieldSelector",
        "string",
        "Restrict the list by the objects' fields.",
    ),
    (
        "labelSelector",
        "string",
        "Restrict the list by the objects' labels.",
    ),
    ("limit", "integer", "Maximum number of items to return."),
    (
        "resourceVersion",
        "string",
        "Resource version the list or watch starts from.",
    ),
    (
        "resourceVersionMatch",
        "string",
        "How resourceVersion applies: Exact or NotOlderThan.",
    ),
    (
        "sendInitialEvents",
        "boolean",
        "Start a watch with the current state as ADDED events.",
    ),
    (
        "timeoutSeconds",
        "integer",
        "Timeout of the list or watch call.",
    ),
    ("watch", "boolean", "Watch for changes instead of listing."),
];
pub(super) const LOG: &[Param] = &[
    ("container", "string", "The container to stream logs of."),
    ("follow", "boolean", "Follow the log stream."),
    ("limitBytes", "integer", "Stop after this many bytes."),
    (
        "previous",
        "boolean",
        "Logs of the previous, terminated container.",
    ),
    (
        "sinceSeconds",
        "integer",
        "Only logs newer than this many seconds.",
    ),
    ("sinceTime", "string", "Only logs after this RFC 3339 time."),
    (
        "tailLines",
        "integer",
        "Number of lines from the end of the log to show.",
    ),
    (
        "timestamps",
        "boolean",
        "Prefix every line with its timestamp.",
    ),
];

pub(super) fn query(params: &[Param]) -> Vec<Value> {
    params
        .iter()
        .map(|(name, ty, description)| {
            json!({
                "description": description,
                "in": "query",
                "name": name,
                "schema": { "type": ty, "uniqueItems": true },
            })
        })
        .collect()
}

pub(super) fn path_param(name: &str, description: &str) -> Value {
    json!({
        "description": description,
        "in": "path",
        "name": name,
        "required": true,
        "schema": { "type": "string", "uniqueItems": true },
    })
}
