//! What the building blocks of a patch cost on the measured object, through public APIs
//! only: copying it, (de)serializing it, reading and writing its managed-field sets and
//! set algebra over them. Explains where the per-patch time goes (`--breakdown`).

use crate::inproc::{Op, time_n};
use anyhow::{Context, Result, anyhow};
use r8s_api::managedfields::set::Set;
use serde_json::Value;
use std::hint::black_box;

/// Times each building block `iters` times on `live`.
pub fn run(live: &Value, warmup: usize, iters: usize) -> Result<Vec<Op>> {
    let bytes = serde_json::to_vec(live)?;
    let fields = live
        .pointer("/metadata/managedFields/0/fieldsV1")
        .context("the stored object has no managed fields")?;
    let set = Set::from_fields_v1(fields).map_err(|e| anyhow!("fieldsV1: {e}"))?;
    let mut without = live.clone();
    if let Some(m) = without.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let op = |name: &str, samples| Op {
        name: name.to_string(),
        body_bytes: 0,
        samples,
        alone: None,
    };
    let mut ops = Vec::new();
    ops.push(op(
        "deep copy of the object (Value::clone)",
        time_n(warmup, iters, |_| {
            black_box(live.clone());
            Ok(())
        })?,
    ));
    ops.push(op(
        "deep copy without managedFields",
        time_n(warmup, iters, |_| {
            black_box(without.clone());
            Ok(())
        })?,
    ));
    ops.push(op(
        "decode stored JSON",
        time_n(warmup, iters, |_| {
            black_box(serde_json::from_slice::<Value>(&bytes)?);
            Ok(())
        })?,
    ));
    ops.push(op(
        "encode stored JSON",
        time_n(warmup, iters, |_| {
            black_box(serde_json::to_vec(live)?);
            Ok(())
        })?,
    ));
    ops.push(op(
        "fieldsV1 → Set (one manager)",
        time_n(warmup, iters, |_| {
            black_box(Set::from_fields_v1(fields).map_err(|e| anyhow!("{e}"))?);
            Ok(())
        })?,
    ));
    ops.push(op(
        "Set → fieldsV1",
        time_n(warmup, iters, |_| {
            black_box(set.to_fields_v1());
            Ok(())
        })?,
    ));
    ops.push(op(
        "Set::clone",
        time_n(warmup, iters, |_| {
            black_box(set.clone());
            Ok(())
        })?,
    ));
    ops.push(op(
        "Set::difference (with itself)",
        time_n(warmup, iters, |_| {
            black_box(set.difference(&set));
            Ok(())
        })?,
    ));
    ops.push(op(
        "Set::union (with itself)",
        time_n(warmup, iters, |_| {
            black_box(set.union(&set));
            Ok(())
        })?,
    ));
    let paths = set.paths().len();
    for o in &mut ops {
        o.body_bytes = if o.name.contains("Set") || o.name.contains("fieldsV1") {
            paths
        } else {
            bytes.len()
        };
    }
    Ok(ops)
}
