//! Label selectors (`metav1.LabelSelector`) and node selectors (`v1.NodeSelector`) parsed
//! once per pod and matched cheaply against label maps.
//!
//! Parse rules follow upstream: a nil label selector matches nothing, an empty one matches
//! everything; node selector terms are ORed, requirements inside a term ANDed, and a term
//! that does not parse (or is empty) matches nothing while the others still count.

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One `key op values` requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether a label value (`None` = key absent) satisfies the requirement.
    pub fn matches_value(&self, v: Option<&str>) -> bool {
        match self.op {
            Op::In => v.is_some_and(|v| self.values.iter().any(|x| x == v)),
            Op::NotIn => v.is_none_or(|v| !self.values.iter().any(|x| x == v)),
            Op::Exists => v.is_some(),
            Op::DoesNotExist => v.is_none(),
            Op::Gt | Op::Lt => {
                let (Some(v), Some(bound)) = (v, self.values.first()) else {
                    return false;
                };
                let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.op == Op::Gt {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.key).map(String::as_str))
    }
}

/// A parsed `metav1.LabelSelector`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// A nil selector: matches nothing.
    pub nothing: bool,
    pub reqs: Vec<Requirement>,
}

impl LabelSelector {
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    pub fn nothing() -> Self {
        LabelSelector {
            nothing: true,
            reqs: Vec::new(),
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        !self.nothing && self.reqs.iter().all(|r| r.matches(labels))
    }

    /// Matches every label set (a non-nil empty selector).
    pub fn is_everything(&self) -> bool {
        !self.nothing && self.reqs.is_empty()
    }

    /// Parse an optional API selector (`None` → matches nothing).
    pub fn parse(sel: Option<&ApiLabelSelector>) -> Result<Self, String> {
        let Some(sel) = sel else {
            return Ok(Self::nothing());
        };
        let mut reqs = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::In,
                values: vec![v.clone()],
            });
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let op = match e.operator.as_str() {
                "In" => Op::In,
                "NotIn" => Op::NotIn,
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            match op {
                Op::In | Op::NotIn if values.is_empty() => {
                    return Err("values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty".into());
                }
                Op::Exists | Op::DoesNotExist if !values.is_empty() => {
                    return Err(format!(
                        "values: Invalid value: {values:?}: values set must be empty for exists and does not exist"
                    ));
                }
                _ => {}
            }
            reqs.push(Requirement {
                key: e.key.clone(),
                op,
                values,
            });
        }
        Ok(LabelSelector {
            nothing: false,
            reqs,
        })
    }

    /// Add `key in (value)` requirements (topology spread `matchLabelKeys`).
    pub fn and_equals(&mut self, key: &str, value: &str) {
        self.reqs.push(Requirement {
            key: key.into(),
            op: Op::In,
            values: vec![value.into()],
        });
    }
}

/// One node selector term; `None` requirements mean the term failed to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTerm {
    /// `None`: invalid or empty term, matches nothing.
    pub labels: Option<Vec<Requirement>>,
    /// `metadata.name` requirements (the only supported field).
    pub fields: Vec<Requirement>,
}

fn parse_node_req(r: &NodeSelectorRequirement, field: bool) -> Option<Requirement> {
    let values = r.values.clone().unwrap_or_default();
    let op = match r.operator.as_str() {
        "In" => Op::In,
        "NotIn" => Op::NotIn,
        "Exists" if !field => Op::Exists,
        "DoesNotExist" if !field => Op::DoesNotExist,
        "Gt" if !field => Op::Gt,
        "Lt" if !field => Op::Lt,
        _ => return None,
    };
    let ok = match op {
        Op::In | Op::NotIn => !values.is_empty() && (!field || values.len() == 1),
        Op::Exists | Op::DoesNotExist => values.is_empty(),
        Op::Gt | Op::Lt => values.len() == 1 && values[0].parse::<i64>().is_ok(),
    };
    if !ok || (field && r.key != "metadata.name") {
        return None;
    }
    Some(Requirement {
        key: r.key.clone(),
        op,
        values,
    })
}

impl NodeTerm {
    pub fn parse(t: &NodeSelectorTerm) -> Self {
        let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
        let fields = t.match_fields.as_deref().unwrap_or(&[]);
        if exprs.is_empty() && fields.is_empty() {
            return NodeTerm {
                labels: None,
                fields: Vec::new(),
            };
        }
        let labels: Option<Vec<Requirement>> =
            exprs.iter().map(|r| parse_node_req(r, false)).collect();
        let parsed_fields: Option<Vec<Requirement>> =
            fields.iter().map(|r| parse_node_req(r, true)).collect();
        match (labels, parsed_fields) {
            (Some(l), Some(f)) => NodeTerm {
                labels: Some(l),
                fields: f,
            },
            _ => NodeTerm {
                labels: None,
                fields: Vec::new(),
            },
        }
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        let Some(reqs) = &self.labels else {
            return false;
        };
        reqs.iter().all(|r| r.matches(labels))
            && self.fields.iter().all(|f| f.matches_value(Some(node_name)))
    }

    /// Node names this term is pinned to by `metadata.name In (...)`, if any.
    pub fn pinned_names(&self) -> Option<Vec<String>> {
        let mut out: Option<Vec<String>> = None;
        for f in self.fields.iter().filter(|f| f.op == Op::In) {
            out = Some(match out {
                None => f.values.clone(),
                Some(prev) => prev.into_iter().filter(|n| f.values.contains(n)).collect(),
            });
        }
        out
    }
}

/// ORed node selector terms (`requiredDuringScheduling…` of node affinity).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelectorTerms(pub Vec<NodeTerm>);

impl NodeSelectorTerms {
    pub fn parse(ns: &NodeSelector) -> Self {
        NodeSelectorTerms(ns.node_selector_terms.iter().map(NodeTerm::parse).collect())
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        self.0.iter().any(|t| t.matches(labels, node_name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(v: serde_json::Value) -> Result<LabelSelector, String> {
        let s: ApiLabelSelector = serde_json::from_value(v).expect("selector json");
        LabelSelector::parse(Some(&s))
    }

    #[test]
    fn label_selector_table() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        let cases = [
            (json!({}), true),
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "db"}}), false),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db", "web"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                false,
            ),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s.clone()).map(|s| s.matches(&l)), Ok(want), "{s}");
        }
        assert!(
            !LabelSelector::parse(None)
                .map(|s| s.matches(&l))
                .unwrap_or(true)
        );
    }

    #[test]
    fn label_selector_errors() {
        assert!(sel(json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]})).is_err());
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}))
                .is_err()
        );
        assert!(
            sel(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}))
                .is_err()
        );
    }

    fn terms(v: serde_json::Value) -> NodeSelectorTerms {
        let ns: NodeSelector =
            serde_json::from_value(json!({"nodeSelectorTerms": v})).expect("ns json");
        NodeSelectorTerms::parse(&ns)
    }

    #[test]
    fn node_selector_table() {
        let l = labels(&[("zone", "a"), ("cores", "16")]);
        let cases = [
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]),
                false,
            ),
            // ORed terms.
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                       {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}]),
                true,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                true,
            ),
            (
                json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
                false,
            ),
            // Empty and invalid terms match nothing, but do not spoil valid ones.
            (json!([{}]), false),
            (
                json!([{"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]}]),
                false,
            ),
            (
                json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["x"]}]},
                       {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
                true,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(terms(t.clone()).matches(&l, "n1"), want, "{t}");
        }
    }

    #[test]
    fn pinned_names_intersect() {
        let t = terms(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["a"]},
        ]}]));
        assert_eq!(t.0[0].pinned_names(), Some(vec!["a".to_string()]));
        let t = terms(json!([{"matchExpressions": [{"key": "x", "operator": "Exists"}]}]));
        assert_eq!(t.0[0].pinned_names(), None);
    }
}
