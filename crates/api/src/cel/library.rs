//! The CEL environment rules are compiled and evaluated in: the standard library with its
//! macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`), optionals
//! (`optional.of`, `hasValue()`, `value()`, `orValue()`), `matches`, `duration()`,
//! `timestamp()`, cel-go's strings extension (`lowerAscii`, `upperAscii`, `trim`, `split`,
//! `join`, `replace`, `substring`, `indexOf`, `format`, …) and lists extension
//! (`distinct`, `flatten`, `reverse`, `slice`, `sort`, `sortBy`), plus the Kubernetes list
//! library (`isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf` on lists) and regex
//! library (`find`, `findAll`) and quantity library (`quantity()`, `isQuantity()`,
//! `sign`, `isInteger`, `asInteger`, `asApproximateFloat`, `compareTo`, `isLessThan`,
//! `isGreaterThan`, `add`, `sub`, `==`; quantities are held at milli-unit precision),
//! format library (`format.dns1123Label()`, … `format.named(name)`, `<format>.validate(s)`)
//! and the IP/CIDR predicates `isIP(s)` and `isCIDR(s)`.
//!
//! Not provided (a rule calling them compiles, as upstream, and fails to evaluate, naming
//! the function): the Kubernetes `url`, `ip()`/`cidr()` values, `semver` and authorizer
//! libraries.

use crate::strategy::quantity::parse_quantity;
use cel::common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, STRING_TYPE, Type};
use cel::common::value::{CowVal, Val};
use cel::{Env, ExecutionError, Value};
use std::cmp::Ordering;
use std::sync::{Arc, LazyLock};

/// Functions of upstream's Kubernetes CEL libraries this server does not implement. A rule
/// that calls one compiles (upstream accepts it) and reports an evaluation error.
pub(crate) const UNSUPPORTED_UPSTREAM: &[&str] = &[
    "url",
    "isURL",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "ip",
    "cidr",
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
    "includes",
];

/// The shared environment (built once; programs and contexts hold it by `Arc`).
pub(crate) fn env() -> Arc<Env> {
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
    let _ = env.add_overload("isIP", "is_ip_string", vec![STRING_TYPE], is_ip);
    let _ = env.add_overload("isCIDR", "is_cidr_string", vec![STRING_TYPE], is_cidr);
    for (name, f) in FORMATS {
        let _ = env.add_overload(
            &format!("format.{name}"),
            &format!("format_{name}"),
            vec![],
            *f,
        );
    }
    let _ = env.add_overload(
        "format.named",
        "format_named_string",
        vec![STRING_TYPE],
        format_named,
    );
    let _ = env.add_member_overload(
        "validate",
        "format_validate_string",
        Type::new_opaque_type(FORMAT),
        vec![STRING_TYPE],
        format_validate,
    );
    env
}

/// `isIP`: an IPv4 or IPv6 address as upstream accepts it (no zone, no IPv4-mapped IPv6,
/// no leading zeros in IPv4).
fn parse_ip(s: &str) -> Option<std::net::IpAddr> {
    match s.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => None,
        ip => Some(ip),
    }
}

fn is_ip<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(Value::Bool(parse_ip(&string_arg(&args)?).is_some()))
}

fn is_cidr<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let s = string_arg(&args)?;
    let valid = s.split_once('/').is_some_and(|(ip, bits)| {
        let max = match parse_ip(ip) {
            Some(std::net::IpAddr::V4(_)) => 32,
            Some(std::net::IpAddr::V6(_)) => 128,
            None => return false,
        };
        !bits.starts_with('+')
            && (bits == "0" || !bits.starts_with('0'))
            && bits.parse::<u8>().is_ok_and(|b| b <= max)
    });
    owned(Value::Bool(valid))
}

/// A named string format of the format library.
#[derive(Debug, PartialEq, Eq)]
struct Format(&'static str);

impl cel::objects::Opaque for Format {
    fn runtime_type_name(&self) -> &str {
        FORMAT
    }
}

const FORMAT: &str = "kubernetes.NamedFormat";

/// The format library's formats and their `format.<name>()` functions.
const FORMATS: &[(&str, cel::common::functions::Function)] = &[
    ("dns1123Label", |_| format_of("dns1123Label")),
    ("dns1123Subdomain", |_| format_of("dns1123Subdomain")),
    ("dns1035Label", |_| format_of("dns1035Label")),
    ("qualifiedName", |_| format_of("qualifiedName")),
    ("dns1123LabelPrefix", |_| format_of("dns1123LabelPrefix")),
    ("dns1123SubdomainPrefix", |_| {
        format_of("dns1123SubdomainPrefix")
    }),
    ("dns1035LabelPrefix", |_| format_of("dns1035LabelPrefix")),
    ("labelValue", |_| format_of("labelValue")),
    ("uri", |_| format_of("uri")),
    ("uuid", |_| format_of("uuid")),
    ("byte", |_| format_of("byte")),
    ("date", |_| format_of("date")),
    ("datetime", |_| format_of("datetime")),
];

fn format_of<'b, 'v>(name: &'static str) -> Result<CowVal<'b, 'v>, ExecutionError> {
    owned(Value::Opaque(Arc::new(Format(name))))
}

fn format_named<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let name = string_arg(&args)?;
    let found = FORMATS.iter().find(|(n, _)| *n == name.as_str());
    let optional = match found {
        Some((n, _)) => cel::objects::OptionalValue::of(Value::Opaque(Arc::new(Format(n)))),
        None => cel::objects::OptionalValue::none(),
    };
    owned(Value::Opaque(Arc::new(optional)))
}

/// Upstream's messages for a string that is not of `format`.
fn format_errors(format: &str, s: &str) -> Vec<String> {
    use crate::strategy::validation as v;
    let fails = |ok: bool, msg: &str| {
        if ok {
            Vec::new()
        } else {
            vec![msg.to_string()]
        }
    };
    match format {
        "dns1123Label" => v::validate_name(v::NameRule::Dns1123Label, s, false),
        "dns1123Subdomain" => v::validate_name(v::NameRule::Dns1123Subdomain, s, false),
        "dns1035Label" => v::validate_name(v::NameRule::Dns1035Label, s, false),
        "dns1123LabelPrefix" => v::validate_name(v::NameRule::Dns1123Label, s, true),
        "dns1123SubdomainPrefix" => v::validate_name(v::NameRule::Dns1123Subdomain, s, true),
        "dns1035LabelPrefix" => v::validate_name(v::NameRule::Dns1035Label, s, true),
        "qualifiedName" => v::is_qualified_name(s),
        "labelValue" => v::is_valid_label_value(s),
        "uri" => fails(
            s.starts_with('/')
                || s.split_once(':').is_some_and(|(scheme, _)| {
                    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                        && scheme
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                }),
            &format!(
                "parse {}: invalid URI for request",
                crate::strategy::errors::go_quote(s)
            ),
        ),
        "uuid" => fails(
            s.len() == 36 && uuid::Uuid::parse_str(s).is_ok(),
            "does not match the UUID format",
        ),
        "byte" => {
            use base64::Engine;
            fails(
                base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
                "invalid base64",
            )
        }
        "date" => fails(
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            "invalid date",
        ),
        "datetime" => fails(
            chrono::DateTime::parse_from_rfc3339(s).is_ok(),
            "invalid datetime",
        ),
        _ => Vec::new(),
    }
}

fn format_validate<'b, 'v>(args: Vec<CowVal<'b, 'v>>) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let format = match args.first().map(value_of).transpose()? {
        Some(Value::Opaque(o)) => o
            .downcast_ref::<Format>()
            .map(|f| f.0)
            .ok_or_else(ExecutionError::missing_argument_or_target)?,
        _ => return Err(ExecutionError::missing_argument_or_target()),
    };
    let s = match args.get(1).map(value_of).transpose()? {
        Some(Value::String(s)) => s,
        _ => return Err(ExecutionError::missing_argument_or_target()),
    };
    let errors = format_errors(format, &s);
    let optional = if errors.is_empty() {
        cel::objects::OptionalValue::none()
    } else {
        let list = errors
            .into_iter()
            .map(|e| Value::String(Arc::new(e)))
            .collect();
        cel::objects::OptionalValue::of(Value::List(Arc::new(list)))
    };
    owned(Value::Opaque(Arc::new(optional)))
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
pub(crate) fn error_text(e: &ExecutionError) -> String {
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
pub(crate) fn is_overload_error(e: &ExecutionError) -> bool {
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
