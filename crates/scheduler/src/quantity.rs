//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`, `512Mi`) as integers: CPU in
//! millicores and everything else in base units, rounded up as upstream's
//! `MilliValue()`/`Value()` do.

/// Why a quantity string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
)]
pub struct QuantityError(pub String);

/// The value of `q` multiplied by `10^scale_exp` (0 → base units, 3 → milli-units), rounded
/// up to an integer and saturated to `i64`.
fn scaled(q: &str, scale_exp: i32) -> Result<i64, QuantityError> {
    let err = || QuantityError(q.to_string());
    let s = q.trim();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(err());
    }
    // Mantissa as an integer of decimal digits plus a power-of-ten exponent.
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let digits: String = format!("{int_part}{frac_part}");
    let mut exp10: i32 = -(frac_part.len() as i32);
    let mut pow2: u32 = 0;
    match suffix {
        "" => {}
        "Ki" => pow2 = 10,
        "Mi" => pow2 = 20,
        "Gi" => pow2 = 30,
        "Ti" => pow2 = 40,
        "Pi" => pow2 = 50,
        "Ei" => pow2 = 60,
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        other if other.starts_with(['e', 'E']) => {
            let e: i32 = other[1..].parse().map_err(|_| err())?;
            exp10 += e;
        }
        _ => return Err(err()),
    }
    exp10 += scale_exp;
    // Work in i128 with saturation; digits beyond 38 cannot matter for i64 results.
    let digits = digits.trim_start_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if digits.len() > 36 {
        return Ok(if neg { i64::MIN } else { i64::MAX });
    }
    let mut mant: i128 = digits.parse().map_err(|_| err())?;
    if mant == 0 {
        return Ok(0);
    }
    mant = mant.saturating_mul(1i128 << pow2.min(62));
    let mut value = mant;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = value.saturating_mul(10);
            if value > i64::MAX as i128 {
                break;
            }
        }
    } else {
        let div = 10i128.checked_pow((-exp10) as u32);
        value = match div {
            Some(d) => (value + d - 1) / d, // round up
            None => 1,
        };
    }
    let v = value.min(i64::MAX as i128) as i64;
    Ok(if neg { -v } else { v })
}

/// CPU-style value in milli-units (`"100m"` → 100, `"2"` → 2000).
pub fn milli_value(q: &str) -> Result<i64, QuantityError> {
    scaled(q, 3)
}

/// Value in base units, rounded up (`"1Gi"` → 1073741824, `"100m"` → 1).
pub fn value(q: &str) -> Result<i64, QuantityError> {
    scaled(q, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_forms() {
        let cases: &[(&str, i64, i64)] = &[
            ("0", 0, 0),
            ("1", 1000, 1),
            ("100m", 100, 1),
            ("1.5", 1500, 2),
            ("0.1", 100, 1),
            ("250m", 250, 1),
            ("1Ki", 1_024_000, 1024),
            ("1Mi", 1_048_576_000, 1_048_576),
            ("256Gi", 274_877_906_944_000, 274_877_906_944),
            ("1k", 1_000_000, 1000),
            ("1M", 1_000_000_000, 1_000_000),
            ("1e3", 1_000_000, 1000),
            ("1E3", 1_000_000, 1000),
            ("1.5e-3", 2, 1),
            ("500u", 1, 1),
            ("1n", 1, 1),
            ("+2", 2000, 2),
            ("-1", -1000, -1),
            ("110", 110_000, 110),
        ];
        for (q, milli, v) in cases {
            assert_eq!(milli_value(q), Ok(*milli), "milli {q}");
            assert_eq!(value(q), Ok(*v), "value {q}");
        }
    }

    #[test]
    fn rejects_garbage_and_saturates() {
        for q in ["", "abc", "1.2.3", "1Xi", "m", "1e", "."] {
            assert!(value(q).is_err(), "{q}");
        }
        assert_eq!(value("1e30"), Ok(i64::MAX));
        assert_eq!(value("8Ei"), Ok(i64::MAX));
    }
}
