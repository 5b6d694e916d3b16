//! CEL as Kubernetes uses it, shared by CRD validation rules
//! ([`crate::strategy::validation_rules`]) and admission (ValidatingAdmissionPolicies and
//! webhook `matchConditions`, [`admission`]):
//!
//! - [`library`]: the environment (standard library, extensions, the Kubernetes
//!   libraries) and cel-go's wording of evaluation errors;
//! - [`value`]: JSON values as CEL values without a schema;
//! - [`check`]: compiling with the checks upstream's type checker makes that matter most
//!   (undeclared references, undefined fields of declared types) and result types;
//! - [`admission`]: admission expressions, their variables and evaluation.

pub mod admission;
pub(crate) mod check;
pub(crate) mod library;
pub(crate) mod value;

pub use check::Ty;

/// CEL's reserved words: they cannot name variables, and properties so named are reached
/// as `__{name}__`.
pub const RESERVED: &[&str] = &[
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Runs `program`; a panic in the interpreter is an evaluation error, not a dead request.
pub(crate) fn run(program: &cel::Program, ctx: &cel::Context<'_, '_>) -> cel::ResolveResult {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| program.execute(ctx))).unwrap_or_else(
        |_| {
            Err(cel::ExecutionError::InternalError(
                "the expression could not be evaluated".into(),
            ))
        },
    )
}
