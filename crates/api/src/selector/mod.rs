//! Label and field selectors, parsed and matched exactly as Kubernetes does
//! (`k8s.io/apimachinery/pkg/labels` and `pkg/fields`, v1.33), with upstream's
//! error messages so `kubectl` users see familiar text.
//!
//! - [`LabelSelector`]: `?labelSelector=` syntax, or a `metav1.LabelSelector`
//!   object via [`from_label_selector_json`] (null → nothing, `{}` → everything).
//! - [`FieldSelector`]: `?fieldSelector=` syntax, matched through a field lookup.

mod field;
mod label;
mod parse;
mod typed;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// The name checks selectors apply; one implementation, in the strategy validators.
pub use crate::strategy::validation::{
    is_dns1123_subdomain, is_qualified_name, is_valid_label_value,
};
pub use field::{FieldOperator, FieldRequirement, FieldSelector, escape_value, unescape_value};
pub use label::{LabelSelector, LabelSource, Operator, Requirement, from_label_selector_json};
pub use typed::matches_typed;

/// A selector that could not be parsed or converted. The message is upstream's,
/// suitable for a 400 BadRequest `Status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// Invalid label selector syntax, key, value or operator.
    #[error("{0}")]
    Label(String),
    /// Invalid field selector syntax or escape.
    #[error("{0}")]
    Field(String),
    /// A `metav1.LabelSelector` JSON value of the wrong shape.
    #[error("{0}")]
    Malformed(String),
}
