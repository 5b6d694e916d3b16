//! `metav1.LabelSelector` matching (matchLabels AND matchExpressions).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

/// Whether `labels` satisfy `sel`. A missing selector matches nothing; an empty one
/// matches everything; an unknown operator matches nothing (as an invalid selector
/// would).
pub fn matches(sel: Option<&LabelSelector>, labels: Option<&BTreeMap<String, String>>) -> bool {
    sel.is_some_and(|sel| r8s_api::selector::matches_typed(sel, labels))
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
