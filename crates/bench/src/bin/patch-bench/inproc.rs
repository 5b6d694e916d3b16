//! In-process patch operations through `r8s_api`, each doing what the API server's PATCH
//! handler does before validation and storage: decode the body, patch the live object,
//! and record field ownership (`managedfields::record_update` for JSON, merge and strategic
//! patches; `managedfields::apply` for server-side apply, where ownership is the merge).

use crate::object;
use anyhow::{Context, Result, anyhow};
use r8s_api::managedfields::{self, ApplyOptions, UpdateOptions};
use r8s_api::patch::{PatchType, apply_patch, merge_keys_for};
use serde_json::{Value, json};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The time recorded in managed-field entries (fixed: the clock is not what is measured).
const NOW: &str = "2026-01-01T00:00:00Z";

/// One measured operation.
pub struct Op {
    pub name: String,
    /// Size of the request body.
    pub body_bytes: usize,
    /// Every timed iteration, ownership bookkeeping included.
    pub samples: Vec<Duration>,
    /// The same operation without `record_update` (None for apply, where ownership is
    /// the merge itself).
    pub alone: Option<Vec<Duration>>,
}

/// Time `iters` calls of `f(i)` after `warmup` untimed ones.
pub fn time_n(
    warmup: usize,
    iters: usize,
    mut f: impl FnMut(usize) -> Result<()>,
) -> Result<Vec<Duration>> {
    for i in 0..warmup {
        f(i)?;
    }
    let mut samples = Vec::with_capacity(iters);
    for i in 0..iters {
        let t = Instant::now();
        f(i)?;
        samples.push(t.elapsed());
    }
    Ok(samples)
}

fn definition() -> Result<&'static str> {
    r8s_api::openapi::definition_name("apps", "v1", "Deployment")
        .ok_or_else(|| anyhow!("no OpenAPI definition for apps/v1 Deployment"))
}

/// A patch of type `kind` with alternating bodies, with and without ownership recording.
fn patch_op(
    name: &str,
    live: &Value,
    kind: PatchType,
    bodies: &[Vec<u8>],
    warmup: usize,
    iters: usize,
) -> Result<Op> {
    let keys = merge_keys_for("apps", "Deployment");
    let def = definition()?;
    let opts = UpdateOptions {
        manager: "kubectl-patch",
        api_version: "apps/v1",
        subresource: "",
        reset_fields: managedfields::reset_fields("apps", "Deployment", ""),
        now: NOW,
    };
    let body = |i: usize| &bodies[i % bodies.len()];
    let alone = time_n(warmup, iters, |i| {
        let out = apply_patch(kind, live, body(i), &keys).map_err(|e| anyhow!("{name}: {e}"))?;
        black_box(out);
        Ok(())
    })?;
    let samples = time_n(warmup, iters, |i| {
        let mut out =
            apply_patch(kind, live, body(i), &keys).map_err(|e| anyhow!("{name}: {e}"))?;
        managedfields::record_update(Some(live), &mut out, def, &opts);
        black_box(out);
        Ok(())
    })?;
    Ok(Op {
        name: name.to_string(),
        body_bytes: bodies[0].len(),
        samples,
        alone: Some(alone),
    })
}

/// Server-side apply of `bodies` (alternating) onto `live` (None: the apply that creates).
fn apply_op(
    name: &str,
    live: Option<&Value>,
    bodies: &[Vec<u8>],
    warmup: usize,
    iters: usize,
) -> Result<Op> {
    let def = definition()?;
    let opts = apply_options();
    let samples = time_n(warmup, iters, |i| {
        let applied = r8s_api::patch::apply::decode_apply_body(&bodies[i % bodies.len()])
            .map_err(|e| anyhow!("{name}: {e}"))?;
        let out =
            managedfields::apply(live, &applied, def, &opts).map_err(|e| anyhow!("{name}: {e}"))?;
        black_box(out);
        Ok(())
    })?;
    Ok(Op {
        name: name.to_string(),
        body_bytes: bodies[0].len(),
        samples,
        alone: None,
    })
}

fn apply_options() -> ApplyOptions<'static> {
    ApplyOptions {
        manager: "bench-apply",
        force: false,
        api_version: "apps/v1",
        kind: "Deployment",
        subresource: "",
        reset_fields: managedfields::reset_fields("apps", "Deployment", ""),
        now: NOW,
    }
}

/// Every in-process operation against `live` (the Deployment as the API server stored
/// it after a create, managed fields included) with `containers` containers.
/// Only operations whose name contains one of `only` run (all when empty).
pub fn run(
    live: &Value,
    containers: usize,
    warmup: usize,
    iters: usize,
    only: &[String],
) -> Result<Vec<Op>> {
    let want = |name: &str| only.is_empty() || only.iter().any(|o| name.contains(o.as_str()));
    let t = object::target(containers);
    let name = live
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .context("live object has no name")?;
    let ns = live
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let alternate = |f: &dyn Fn(usize) -> Vec<u8>| vec![f(1), f(2)];
    let patches: [(&str, PatchType, Vec<Vec<u8>>); 5] = [
        (
            "JSON patch: 1 image",
            PatchType::Json,
            alternate(&|v| object::json_patch_image(t, v)),
        ),
        (
            "merge patch: 1 image (whole list)",
            PatchType::Merge,
            alternate(&|v| object::merge_patch_image(live, t, v)),
        ),
        (
            "strategic: 1 image",
            PatchType::StrategicMerge,
            alternate(&|v| object::strategic_image(t, v)),
        ),
        (
            "strategic: add container, $setElementOrder",
            PatchType::StrategicMerge,
            vec![object::strategic_add(containers)],
        ),
        (
            "strategic: remove container, $setElementOrder",
            PatchType::StrategicMerge,
            vec![object::strategic_remove(containers, t)],
        ),
    ];
    let mut ops = Vec::new();
    for (op, kind, bodies) in patches {
        if want(op) {
            ops.push(patch_op(op, live, kind, &bodies, warmup, iters)?);
        }
    }

    // Server-side apply by one manager: the apply that creates the object, then applies of
    // the same configuration and of one changed field onto what that manager owns.
    let config = |v: usize| object::apply_config(name, ns, containers, t, v);
    let create = "apply: full object, create";
    if want(create) {
        ops.push(apply_op(create, None, &[config(0)], warmup, iters)?);
    }
    let applied: Value = serde_json::from_slice(&config(0))?;
    let mut owned = managedfields::apply(None, &applied, definition()?, &apply_options())
        .map_err(|e| anyhow!("first apply: {e}"))?;
    // What the create adds around the applied fields.
    for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
        if let Some(v) = live.pointer(&format!("/metadata/{field}")) {
            owned["metadata"][field] = v.clone();
        }
    }
    owned["status"] = json!({});
    let applies = [
        ("apply: full object, unchanged", vec![config(0)]),
        ("apply: full object, 1 image changed", alternate(&config)),
    ];
    for (op, bodies) in applies {
        if want(op) {
            ops.push(apply_op(op, Some(&owned), &bodies, warmup, iters)?);
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_succeeds_on_a_small_object() {
        let mut live = object::deployment("big", "default", 6);
        live["metadata"]["uid"] = json!("u-1");
        let ops = run(&live, 6, 1, 3, &[]).unwrap();
        assert_eq!(ops.len(), 8);
        assert!(ops.iter().all(|o| o.samples.len() == 3));
    }
}
