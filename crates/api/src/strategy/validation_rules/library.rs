//! The CEL environment rules are compiled and evaluated in: the standard library with its
//! macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`), optionals
//! (`optional.of`, `hasValue()`, `value()`, `orValue()`), `matches`, `duration()`,
//! `timestamp()`, cel-go's strings extension (`lowerAscii`, `upperAscii`, `trim`, `split`,
//! `join`, `replace`, `substring`, `indexOf`, `format`, …) and lists extension
//! (`distinct`, `flatten`, `reverse`, `slice`, `sort`, `sortBy`), plus the Kubernetes list
//! library (`isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf` on lists) and regex
//! library (`find`, `findAll`) and quantity library (`quantity()`, `isQuantity()`,
//! `sign`, `isInteger`, `asInteger`, `asApproximateFloat`, `compareTo`, `isLessThan`,
//! `isGreaterThan`, `add`, `sub`, `==`; quantities are held at milli-unit precision).
//!
//! Not provided (a rule calling them compiles, as upstream, and fails to evaluate, naming
//! the function): the Kubernetes `url`, `ip`/`cidr`, `semver`, `format` and authorizer
//! libraries.

use crate::strategy::quantity::parse_quantity;
use cel::common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, Value};
use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

/// Functions of upstream's Kubernetes CEL libraries this server does not implement. A rule
/// that calls one compiles (upstream accepts it) and reports an evaluation error.
pub(super) const UNSUPPORTED_UPSTREAM: &[&str] = &[
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "ip",
    "isIP",
    "cidr",
    "isCIDR",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "containsIP",
    "containsCIDR",
    "masked",
    "prefixLength",
    "semver",
    "isSemver",
    "major",
    "minor",
    "patch",
    "named",
    "validate",
    "includes",
];

/// The shared environment (built once; programs and contexts hold it by `Arc`).
pub(super) fn env() -> Arc<Env> {
    static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(build()));
    ENV.clone()
}

fn build() -> Env {
    let mut env = Env::stdlib();
    // Each registration below names functions nothing else declares; a failure would be
    // a programming error caught by the tests, so it only loses that function.
    let _ = env.add_extension(cel::extensions::strings);
    let _ = env.add_extension(cel::extensions::lists);
    let member = |env: &mut Env, name: &str, args: Vec<cel::common::types::Type>, f| {
        let id = format!("list_{name}_{}", args.len());
        let _ = env.add_member_overload(name, &id, LIST_TYPE, args, f);
    };
    member(&mut env, "isSorted", vec![], is_sorted);
    member(&mut env, "sum", vec![], sum);
    member(&mut env, "min", vec![], min);
    member(&mut env, "max", vec![], max);
    member(&mut env, "indexOf", vec![DYN_TYPE], index_of);
    member(&mut env, "lastIndexOf", vec![DYN_TYPE], last_index_of);
    let _ = env.add_member_overload(
        "find",
        "string_find_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    );
    let _ = env.add_member_overload(
        "findAll",
        "string_find_all_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    );
    let _ = env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    );
    let q = quantity_type;
    let quantities: [(&str, Vec<Type>, cel::common::functions::Function); 11] = [
        ("sign", vec![], q_sign),
        ("isInteger", vec![], q_is_integer),
        ("asInteger", vec![], q_as_integer),
        ("asApproximateFloat", vec![], q_as_float),
        ("compareTo", vec![q()], q_compare),
        ("isLessThan", vec![q()], q_less),
        ("isGreaterThan", vec![q()], q_greater),
        ("add", vec![q()], q_add),
        ("add", vec![INT_TYPE], q_add),
        ("sub", vec![q()], q_sub),
        ("sub", vec![INT_TYPE], q_sub),
    ];
    for (name, args, f) in quantities {
        let id = format!(
            "quantity_{name}_{}",
            args.iter().map(Type::name).collect::<Vec<_>>().join("_")
        );
        let _ = env.add_member_overload(name, &id, q(), args, f);
    }
    let _ = env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        to_quantity,
    );
    let _ = env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    );
    env
}

/// A resource quantity, in milli-units (upstream keeps arbitrary precision; amounts below
/// a milli-unit round up here).
#[derive(Debug, PartialEq, Eq)]
struct Quantity(i128);

impl cel::objects::Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        QUANTITY
    }
}

const QUANTITY: &str = "kubernetes.Quantity";

fn quantity_type() -> Type {
    Type::new_opaque_type(QUANTITY)
}

fn quantity_value(milli: i128) -> Value {
    Value::Opaque(Arc::new(Quantity(milli)))
}

/// Argument `i` as milli-units (a quantity, or an int for `add`/`sub`).
fn milli_arg(args: &[CowVal<'_, '_>], i: usize) -> Result<i128, ExecutionError> {
    match args.get(i).map(value_of).transpose()? {
        Some(Value::Opaque(o)) => o
            .downcast_ref::<Quantity>()
            .map(|q| q.0)
            .ok_or_else(ExecutionError::missing_argument_or_target),
        Some(Value::Int(n)) => Ok(i128::from(n) * 1000),
        _ => Err(ExecutionError::missing_argument_or_target()),
    }
}

fn string_arg(args: &[CowVal<'_, '_>]) -> Result<Arc<String>, ExecutionError> {
    match args.first().map(value_of).transpose()? {
        Some(Value::String(s)) => Ok(s),
        _ => Err(ExecutionError::missing_argument_or_target()),
    }
}

fn to_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg(&args)?;
    let milli = parse_quantity(&s).map_err(|e| ExecutionError::function_error("quantity", e))?;
    owned(quantity_value(milli))
}

fn is_quantity<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg(&args)?;
    owned(Value::Bool(parse_quantity(&s).is_ok()))
}

fn q_sign<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(Value::Int(milli_arg(&args, 0)?.signum() as i64))
}

fn q_is_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let m = milli_arg(&args, 0)?;
    owned(Value::Bool(
        m % 1000 == 0 && i64::try_from(m / 1000).is_ok(),
    ))
}

fn q_as_integer<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let m = milli_arg(&args, 0)?;
    match i64::try_from(m / 1000) {
        Ok(n) if m % 1000 == 0 => owned(Value::Int(n)),
        _ => Err(ExecutionError::function_error(
            "asInteger",
            "cannot convert value to integer",
        )),
    }
}

fn q_as_float<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(Value::Float(milli_arg(&args, 0)? as f64 / 1000.0))
}

fn q_compare<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let ordering = milli_arg(&args, 0)?.cmp(&milli_arg(&args, 1)?);
    owned(Value::Int(ordering as i64))
}

fn q_less<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(Value::Bool(milli_arg(&args, 0)? < milli_arg(&args, 1)?))
}

fn q_greater<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(Value::Bool(milli_arg(&args, 0)? > milli_arg(&args, 1)?))
}

fn q_add<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(quantity_value(
        milli_arg(&args, 0)?.saturating_add(milli_arg(&args, 1)?),
    ))
}

fn q_sub<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(quantity_value(
        milli_arg(&args, 0)?.saturating_sub(milli_arg(&args, 1)?),
    ))
}

fn value_of(v: &CowVal<'_, '_>) -> Result<Value, ExecutionError> {
    Value::try_from(&**v)
}

fn list_of(args: &[CowVal<'_, '_>]) -> Result<Arc<Vec<Value>>, ExecutionError> {
    match args.first().map(value_of).transpose()? {
        Some(Value::List(items)) => Ok(items),
        _ => Err(ExecutionError::missing_argument_or_target()),
    }
}

fn owned<'b, 'v>(v: Value) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = Box::<dyn Val>::try_from(v)?;
    Ok(CowVal::Owned(boxed))
}

fn compare(function: &str, a: &Value, b: &Value) -> Result<Ordering, ExecutionError> {
    a.partial_cmp(b)
        .ok_or_else(|| ExecutionError::no_such_overload(function, vec![type_name(a), type_name(b)]))
}

fn type_name(v: &Value) -> String {
    v.type_of().to_string()
}

fn is_sorted<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let items = list_of(&args)?;
    for pair in items.windows(2) {
        if compare("isSorted", &pair[0], &pair[1])? == Ordering::Greater {
            return owned(Value::Bool(false));
        }
    }
    owned(Value::Bool(true))
}

fn sum<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let items = list_of(&args)?;
    let mut total = match items.first() {
        None | Some(Value::Int(_)) => Value::Int(0),
        Some(Value::UInt(_)) => Value::UInt(0),
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(Value::Duration(_)) => Value::Duration(chrono::Duration::zero()),
        Some(other) => {
            return Err(ExecutionError::no_such_overload(
                "sum",
                vec![type_name(other)],
            ));
        }
    };
    for item in items.iter() {
        total = match (&total, item) {
            (Value::Int(a), Value::Int(b)) => {
                Value::Int(a.checked_add(*b).ok_or_else(|| {
                    ExecutionError::Overflow("add", Value::Int(*a), Value::Int(*b))
                })?)
            }
            (Value::UInt(a), Value::UInt(b)) => {
                Value::UInt(a.checked_add(*b).ok_or_else(|| {
                    ExecutionError::Overflow("add", Value::UInt(*a), Value::UInt(*b))
                })?)
            }
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (Value::Duration(a), Value::Duration(b)) => Value::Duration(*a + *b),
            (a, b) => {
                return Err(ExecutionError::no_such_overload(
                    "sum",
                    vec![type_name(a), type_name(b)],
                ));
            }
        };
    }
    owned(total)
}

fn extreme<'b, 'v>(
    function: &str,
    args: Vec<CowVal<'b, 'v>>,
    keep: Ordering,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let items = list_of(&args)?;
    let mut best: Option<&Value> = None;
    for item in items.iter() {
        best = match best {
            Some(b) if compare(function, item, b)? != keep => Some(b),
            _ => Some(item),
        };
    }
    match best {
        Some(b) => owned(b.clone()),
        None => Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        )),
    }
}

fn min<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("min", args, Ordering::Less)
}

fn max<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    extreme("max", args, Ordering::Greater)
}

fn position<'b, 'v>(
    args: Vec<CowVal<'b, 'v>>,
    last: bool,
) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let items = list_of(&args)?;
    let needle = args
        .get(1)
        .map(value_of)
        .transpose()?
        .ok_or_else(ExecutionError::missing_argument_or_target)?;
    let found = if last {
        items.iter().rposition(|i| *i == needle)
    } else {
        items.iter().position(|i| *i == needle)
    };
    owned(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, false)
}

fn last_index_of<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    position(args, true)
}

/// The string and regex arguments of `find`/`findAll`, and the optional limit.
fn regex_args(
    function: &str,
    args: &[CowVal<'_, '_>],
) -> Result<(String, regex::Regex, Option<i64>), ExecutionError> {
    let text = |i: usize| match args.get(i).map(value_of).transpose()? {
        Some(Value::String(s)) => Ok(s.to_string()),
        _ => Err(ExecutionError::missing_argument_or_target()),
    };
    let subject = text(0)?;
    let re = regex::Regex::new(&text(1)?)
        .map_err(|e| ExecutionError::function_error(function, e.to_string()))?;
    let limit = match args.get(2).map(value_of).transpose()? {
        Some(Value::Int(n)) => Some(n),
        _ => None,
    };
    Ok((subject, re, limit))
}

fn find<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (subject, re, _) = regex_args("find", &args)?;
    let found = re.find(&subject).map_or("", |m| m.as_str()).to_string();
    owned(Value::String(Arc::new(found)))
}

fn find_all<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let (subject, re, limit) = regex_args("findAll", &args)?;
    // A negative limit means all, as upstream.
    let limit = limit
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(usize::MAX);
    let found: Vec<Value> = re
        .find_iter(&subject)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_string())))
        .collect();
    owned(Value::List(Arc::new(found)))
}

/// An evaluation error as cel-go words it (upstream's messages quote cel-go's errors).
pub(super) fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::DivisionByZero(_) => "division by zero".into(),
        ExecutionError::RemainderByZero(_) => "modulus by zero".into(),
        ExecutionError::Overflow(..) => "integer overflow".into(),
        ExecutionError::IndexOutOfBounds(i) => match i {
            Value::Int(n) => format!("index out of bounds: {n}"),
            Value::UInt(n) => format!("index out of bounds: {n}"),
            other => format!("index out of bounds: {other:?}"),
        },
        ExecutionError::UndeclaredReference(name) => {
            if UNSUPPORTED_UPSTREAM.contains(&name.as_str()) {
                format!("function '{name}' is not supported by this server")
            } else {
                format!("undeclared reference to '{name}'")
            }
        }
        ExecutionError::FunctionError { message, .. } => message.clone(),
        e if is_overload_error(e) => "no such overload".into(),
        other => other.to_string(),
    }
}

/// Whether `e` is what cel-go reports as "no such overload" (arguments of types no
/// operator or function accepts).
pub(super) fn is_overload_error(e: &ExecutionError) -> bool {
    matches!(
        e,
        ExecutionError::NoSuchOverload(_)
            | ExecutionError::UnsupportedBinaryOperator(..)
            | ExecutionError::ValuesNotComparable(..)
            | ExecutionError::UnexpectedType { .. }
            | ExecutionError::UnsupportedTargetType { .. }
            | ExecutionError::NotSupportedAsMethod { .. }
            | ExecutionError::UnsupportedIndex(..)
            | ExecutionError::UnsupportedKeyType(..)
            | ExecutionError::InvalidArgumentCount { .. }
            | ExecutionError::MissingArgumentOrTarget
    )
}
