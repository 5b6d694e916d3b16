//! apimachinery types whose JSON form is not their protobuf fields: Go gives them custom
//! JSON marshalers (timestamps as RFC 3339 strings, quantities as strings, int-or-string
//! as either, raw JSON passed through).

use chrono::{DateTime, Datelike as _};
use serde_json::Value;

use super::decode::{DecodeError, DecodeResult, scalar};
use super::schema::Scalar;
use super::wire::Reader;

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// Unix seconds of Go's zero `time.Time` (January 1, year 1, UTC), which JSON renders as null.
const GO_ZERO_UNIX: i64 = -62_135_596_800;
const NANOS_PER_SECOND: i128 = 1_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Special {
    Time,
    MicroTime,
    Duration,
    IntOrString,
    Quantity,
    FieldsV1,
    RawExtension,
}

impl Special {
    pub(crate) fn of(message: &str) -> Option<Special> {
        let (package, name) = message.rsplit_once('.')?;
        Some(match (package, name) {
            (META, "Time") => Special::Time,
            (META, "MicroTime") => Special::MicroTime,
            (META, "Duration") => Special::Duration,
            (META, "FieldsV1") => Special::FieldsV1,
            ("k8s.io.apimachinery.pkg.util.intstr", "IntOrString") => Special::IntOrString,
            ("k8s.io.apimachinery.pkg.api.resource", "Quantity" | "QuantityValue") => {
                Special::Quantity
            }
            ("k8s.io.apimachinery.pkg.runtime", "RawExtension") => Special::RawExtension,
            _ => return None,
        })
    }

    /// The JSON form of the value encoded in `bytes` (empty bytes: the Go zero value).
    pub(crate) fn decode(self, bytes: &[u8], depth: usize) -> DecodeResult<Value> {
        match self {
            Special::Time | Special::MicroTime => {
                if bytes.is_empty() {
                    // Go marshals a zero time as no bytes at all, and its JSON as null.
                    return Ok(Value::Null);
                }
                let [seconds, nanos] = read(bytes, [(1, Scalar::Int64), (2, Scalar::Int32)])?;
                // Time keeps whole seconds only (as Go's Time.Unmarshal does).
                let nanos = if self == Special::MicroTime {
                    int(nanos)
                } else {
                    0
                };
                timestamp(int(seconds), nanos, self == Special::MicroTime)
            }
            Special::Duration => {
                let [nanos] = read(bytes, [(1, Scalar::Int64)])?;
                Ok(Value::String(go_duration(int(nanos))))
            }
            Special::IntOrString => {
                let fields = [(1, Scalar::Int64), (2, Scalar::Int32), (3, Scalar::String)];
                let [kind, int_val, str_val] = read(bytes, fields)?;
                match int(kind) {
                    0 => Ok(int_val.unwrap_or_else(|| Value::from(0))),
                    1 => Ok(str_val.unwrap_or_else(|| Value::String(String::new()))),
                    other => Err(DecodeError::new(format!(
                        "invalid IntOrString type {other}"
                    ))),
                }
            }
            Special::Quantity => match read(bytes, [(1, Scalar::String)])? {
                // A zero Quantity is written as "0".
                [None] => Ok(Value::String("0".into())),
                [Some(Value::String(s))] if s.is_empty() => Err(DecodeError::new("empty quantity")),
                [Some(v)] => Ok(v),
            },
            Special::FieldsV1 => raw_json(raw_bytes(bytes)?.as_deref(), depth, false),
            Special::RawExtension => raw_json(raw_bytes(bytes)?.as_deref(), depth, true),
        }
    }
}

/// Reads the listed scalar fields of a small message (last occurrence wins).
fn read<const N: usize>(
    bytes: &[u8],
    fields: [(u32, Scalar); N],
) -> DecodeResult<[Option<Value>; N]> {
    let mut out: [Option<Value>; N] = std::array::from_fn(|_| None);
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        let (number, wire) = reader.key()?;
        match fields.iter().position(|(n, _)| *n == number) {
            Some(i) => {
                let value = scalar(fields[i].1, wire, &mut reader)?;
                if let Some(slot) = out.get_mut(i) {
                    *slot = Some(value);
                }
            }
            None => reader.skip(wire)?,
        }
    }
    Ok(out)
}

fn int(v: Option<Value>) -> i64 {
    v.and_then(|v| v.as_i64()).unwrap_or(0)
}

/// The `raw` bytes (field 1) of a RawExtension or FieldsV1, if any.
fn raw_bytes(bytes: &[u8]) -> DecodeResult<Option<Vec<u8>>> {
    let mut raw = None;
    let mut reader = Reader::new(bytes);
    while !reader.is_empty() {
        match reader.key()? {
            (1, super::wire::WireType::Len) => raw = Some(reader.len_delimited()?.to_vec()),
            (1, wire) => {
                return Err(DecodeError::new(format!(
                    "wrong wire type {wire:?} for raw"
                )));
            }
            (_, wire) => reader.skip(wire)?,
        }
    }
    Ok(raw)
}

/// Raw bytes that Go writes into JSON verbatim. A RawExtension may instead hold a nested
/// Kubernetes protobuf object, which is decoded in turn.
fn raw_json(raw: Option<&[u8]>, depth: usize, nested_protobuf: bool) -> DecodeResult<Value> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Value::Null);
    };
    if nested_protobuf && super::is_protobuf(raw) {
        return super::decode_body(raw, depth + 1).map_err(|e| match e {
            // Keep the inner path, so the error names the field from the outer root.
            super::ProtobufError::Malformed { path, reason } => DecodeError {
                path: if path.is_empty() {
                    Vec::new()
                } else {
                    vec![path]
                },
                reason,
            },
            other => DecodeError::new(other.to_string()),
        });
    }
    serde_json::from_slice(raw).map_err(|e| DecodeError::new(format!("raw value is not JSON: {e}")))
}

/// RFC 3339 in UTC, as Go's `metav1.Time` (seconds) and `metav1.MicroTime` (microseconds)
/// marshal; Go's zero time is null.
fn timestamp(seconds: i64, nanos: i64, micro: bool) -> DecodeResult<Value> {
    let out_of_range = || DecodeError::new("timestamp out of range");
    let total = i128::from(seconds) * NANOS_PER_SECOND + i128::from(nanos);
    let seconds = i64::try_from(total.div_euclid(NANOS_PER_SECOND)).map_err(|_| out_of_range())?;
    let nanos = u32::try_from(total.rem_euclid(NANOS_PER_SECOND)).map_err(|_| out_of_range())?;
    if seconds == GO_ZERO_UNIX && nanos == 0 {
        return Ok(Value::Null);
    }
    let time = DateTime::from_timestamp(seconds, nanos).ok_or_else(out_of_range)?;
    // Go refuses to marshal years outside [0, 9999] to JSON.
    if !(0..=9999).contains(&time.year()) {
        return Err(out_of_range());
    }
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Ok(Value::String(time.format(format).to_string()))
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "0s".
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if nanos < 0 {
        out.push('-');
    }
    let u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (unit, scale) = match u {
            0..1_000 => ("ns", 1),
            1_000..1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        push_fraction(&mut out, u / scale, u % scale, scale);
        out.push_str(unit);
        return out;
    }
    let seconds = u / 1_000_000_000;
    let (hours, minutes, secs) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    push_fraction(&mut out, secs, u % 1_000_000_000, 1_000_000_000);
    out.push('s');
    out
}

/// `whole` followed by `rest / scale` as a decimal fraction without trailing zeros.
fn push_fraction(out: &mut String, whole: u64, rest: u64, scale: u64) {
    out.push_str(&whole.to_string());
    if rest > 0 {
        let width = scale.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn durations_format_like_go() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(1_000_000), "1ms");
        assert_eq!(go_duration(2_500_000_000), "2.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
        assert_eq!(go_duration(-90_000_000_000), "-1m30s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }

    #[test]
    fn timestamps_format_like_go() {
        assert_eq!(
            timestamp(1_199_149_261, 0, false).unwrap(),
            "2008-01-01T01:01:01Z"
        );
        assert_eq!(
            timestamp(1_199_149_261, 123_456_789, true).unwrap(),
            "2008-01-01T01:01:01.123456Z"
        );
        assert_eq!(timestamp(GO_ZERO_UNIX, 0, false).unwrap(), Value::Null);
        assert_eq!(
            timestamp(0, -1, true).unwrap(),
            "1969-12-31T23:59:59.999999Z"
        );
        assert!(timestamp(i64::MAX, 0, false).is_err());
        assert_eq!(
            timestamp(-62_167_219_200, 0, false).unwrap(),
            "0000-01-01T00:00:00Z"
        );
        assert!(timestamp(-62_167_219_201, 0, false).is_err());
    }
}
