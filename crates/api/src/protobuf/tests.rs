//! End-to-end tests of protobuf body decoding.

use serde_json::Value;

use super::*;

/// The first difference between two JSON values, as a path and both sides.
fn first_difference(path: &str, got: &Value, want: &Value) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    None => return Some(format!("{p}: missing, want {wv}")),
                    Some(gv) => {
                        if let Some(d) = first_difference(&p, gv, wv) {
                            return Some(d);
                        }
                    }
                }
            }
            g.keys()
                .find(|k| !w.contains_key(*k))
                .map(|k| format!("{path}.{k}: unexpected {}", g[k]))
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (gv, wv))| first_difference(&format!("{path}[{i}]"), gv, wv)),
        _ if got == want => None,
        _ => Some(format!("{path}: got {got}, want {want}")),
    }
}

/// Decodes every upstream round-trip fixture (k8s.io/api `testdata/HEAD`, pairs of
/// `<group>.<version>.<Kind>.pb` and `.json`) of the versions we serve and compares the
/// result with the JSON twin. Needs a checkout of k8s.io/api, so it only runs on demand:
/// `R8S_K8S_API_TESTDATA=.../api/testdata/HEAD cargo test -p r8s-api protobuf -- --ignored`.
#[test]
#[ignore = "needs R8S_K8S_API_TESTDATA pointing at k8s.io/api testdata/HEAD"]
fn upstream_roundtrip_fixtures() {
    let dir = std::env::var("R8S_K8S_API_TESTDATA").expect("R8S_K8S_API_TESTDATA");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for pb in entries {
        // WatchEvent is a stream frame without an envelope of its own.
        if pb.extension().is_none_or(|e| e != "pb") || pb.to_string_lossy().contains("WatchEvent") {
            continue;
        }
        let body = std::fs::read(&pb).unwrap();
        let want: Value =
            serde_json::from_slice(&std::fs::read(pb.with_extension("json")).unwrap()).unwrap();
        let name = pb.file_name().unwrap().to_string_lossy().into_owned();
        match decode_to_json(&body) {
            Ok(got) => {
                checked += 1;
                if let Some(d) = first_difference("", &got, &want) {
                    failures.push(format!("{name}: {d}"));
                }
            }
            // Alpha and beta versions, and kinds that are never request bodies.
            Err(ProtobufError::UnknownKind { .. }) => {}
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{} of {checked} differ:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 80, "only {checked} fixtures decoded");
}
