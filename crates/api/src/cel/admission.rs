//! Admission expressions.
