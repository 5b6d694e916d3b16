//! `metav1.LabelSelector` matching (matchLabels AND matchExpressions).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Whether `labels` satisfy `sel`. A missing selector matches nothing; an empty one
/// matches everything; an unknown operator matches nothing (as an invalid selector
/// would).
pub fn matches(sel: Option<&LabelSelector>, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(sel) = sel else { return false };
    let empty = BTreeMap::new();
    let labels = labels.unwrap_or(&empty);
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or(&[]);
            let have = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => have.is_some_and(|v| values.contains(v)),
                "NotIn" => have.is_none_or(|v| !values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    #[test]
    fn labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some([("a".to_string(), "1".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "b".into(),
                operator: "NotIn".into(),
                values: Some(vec!["x".into()]),
            }]),
        };
        let l = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(matches(Some(&sel), Some(&l(&[("a", "1")]))));
        assert!(!matches(Some(&sel), Some(&l(&[("a", "1"), ("b", "x")]))));
        assert!(!matches(Some(&sel), None));
        assert!(matches(Some(&LabelSelector::default()), None));
        assert!(!matches(None, Some(&l(&[("a", "1")]))));
    }
}
