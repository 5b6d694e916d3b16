//! The JSONPath subset CRD printer columns use (`.spec.replicas`,
//! `.status.conditions[?(@.type=="Ready")].status`, `.spec.ports[0].port`,
//! `.metadata.labels.app\.kubernetes\.io/name`): fields, indices, `*` and equality
//! filters. Like upstream's column printer, only the first match is used.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.a.b=="v")]` (or `!=`): the items whose sub-path compares so.
    Filter {
        path: Vec<String>,
        equal: bool,
        value: Value,
    },
}

/// Parses a path; `None` if it is outside the supported subset.
fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let mut name = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                if name == "*" {
                    steps.push(Step::All);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let end = bracket_end(&chars, i)?;
                let inner: String = chars[i + 1..end].iter().collect();
                steps.push(bracket(inner.trim())?);
                i = end + 1;
            }
            _ => {
                // A leading bare name (`spec.x`).
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    name.push(chars[i]);
                    i += 1;
                }
                steps.push(Step::Field(name));
            }
        }
    }
    Some(steps)
}

/// The index of the `]` closing the bracket opened at `open`, skipping quoted text.
fn bracket_end(chars: &[char], open: usize) -> Option<usize> {
    let mut quote = None;
    for (j, &c) in chars.iter().enumerate().skip(open + 1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, ']') => return Some(j),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<&str> {
    let s = s.trim();
    s.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

fn bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name.to_string()));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    let expr = inner.strip_prefix('?')?.trim();
    let expr = expr
        .strip_prefix('(')
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or(expr);
    let (lhs, rhs, equal) = match expr.split_once("==") {
        Some((l, r)) => (l, r, true),
        None => {
            let (l, r) = expr.split_once("!=")?;
            (l, r, false)
        }
    };
    let path = lhs
        .trim()
        .strip_prefix('@')?
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let rhs = rhs.trim();
    let value = match unquote(rhs) {
        Some(s) => Value::String(s.to_string()),
        None => serde_json::from_str(rhs).ok()?,
    };
    Some(Step::Filter { path, equal, value })
}

/// The first value `path` selects in `obj` (`None`: nothing, or an unsupported path).
pub fn first<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let steps = parse(path)?;
    let mut current: Vec<&Value> = vec![obj];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(name) => next.extend(v.get(name.as_str())),
                Step::Index(n) => {
                    let items = v.as_array().map_or(&[][..], Vec::as_slice);
                    let at = if *n < 0 {
                        usize::try_from(i64::try_from(items.len()).ok()? + n).ok()
                    } else {
                        usize::try_from(*n).ok()
                    };
                    next.extend(at.and_then(|i| items.get(i)));
                }
                Step::All => match v {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter { path, equal, value } => {
                    for item in v.as_array().into_iter().flatten() {
                        let got = path.iter().try_fold(item, |v, k| v.get(k.as_str()));
                        if (got == Some(value)) == *equal {
                            next.push(item);
                        }
                    }
                }
            }
        }
        current = next;
    }
    current.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_like_kubectl() {
        let obj = json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "ports": [{"port": 80}, {"port": 443}]},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Ready", "status": "False"}
            ]}
        });
        assert_eq!(first(&obj, ".spec.replicas"), Some(&json!(3)));
        assert_eq!(first(&obj, "{.spec.ports[1].port}"), Some(&json!(443)));
        assert_eq!(first(&obj, ".spec.ports[-1].port"), Some(&json!(443)));
        assert_eq!(first(&obj, ".spec.ports[*].port"), Some(&json!(80)));
        assert_eq!(
            first(&obj, r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(&json!("False"))
        );
        assert_eq!(
            first(&obj, ".status.conditions[?(@.type!='Progressing')].type"),
            Some(&json!("Ready"))
        );
        assert_eq!(
            first(&obj, r".metadata.labels.app\.kubernetes\.io/name"),
            Some(&json!("web"))
        );
        assert_eq!(
            first(&obj, ".metadata.labels['app.kubernetes.io/name']"),
            Some(&json!("web"))
        );
        assert_eq!(first(&obj, ".spec.missing"), None);
        assert_eq!(first(&obj, ".spec.ports[9]"), None);
        assert_eq!(first(&obj, ".spec.ports[?(@.port=="), None);
    }
}
