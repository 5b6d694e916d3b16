//! Resource quantities (`500m`, `1Gi`, `2e3`), parsed like apimachinery's
//! `resource.ParseQuantity` and reduced to milli-units for comparisons.

use thiserror::Error;

/// Why a quantity string was rejected (upstream's error texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    )]
    FormatWrong,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

struct Parts<'a> {
    positive: bool,
    num: &'a str,
    denom: &'a str,
    suffix: &'a str,
}

/// Splits like upstream's `parseQuantityString` (which, e.g., accepts `"-"` and `"."`
/// as zero).
fn split(s: &str) -> Result<Parts<'_>, QuantityError> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    if let Some(&c) = b.first() {
        if c == b'-' {
            positive = false;
            pos += 1;
        } else if c == b'+' {
            pos += 1;
        }
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Ok(Parts {
            positive,
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = if pos == start { "0" } else { &s[start..pos] };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let ds = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = &s[ds..pos];
    }
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && (b[pos] == b'-' || b[pos] == b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return Err(QuantityError::FormatWrong);
    }
    Ok(Parts {
        positive,
        num,
        denom,
        suffix: &s[suffix_start..],
    })
}

enum Scale {
    Binary(u32),
    Decimal(i64),
}

fn interpret(suffix: &str) -> Option<Scale> {
    Some(match suffix {
        "" => Scale::Decimal(0),
        "Ki" => Scale::Binary(10),
        "Mi" => Scale::Binary(20),
        "Gi" => Scale::Binary(30),
        "Ti" => Scale::Binary(40),
        "Pi" => Scale::Binary(50),
        "Ei" => Scale::Binary(60),
        "n" => Scale::Decimal(-9),
        "u" => Scale::Decimal(-6),
        "m" => Scale::Decimal(-3),
        "k" => Scale::Decimal(3),
        "M" => Scale::Decimal(6),
        "G" => Scale::Decimal(9),
        "T" => Scale::Decimal(12),
        "P" => Scale::Decimal(15),
        "E" => Scale::Decimal(18),
        s if s.starts_with(['e', 'E']) => Scale::Decimal(s[1..].parse::<i64>().ok()?),
        _ => return None,
    })
}

fn pow10(n: u64) -> Option<i128> {
    10i128.checked_pow(u32::try_from(n).ok()?)
}

/// Parses a quantity and returns its value in milli-units, rounded away from zero (as
/// upstream rounds resource lists up to milli precision). Values beyond `i128` saturate.
pub fn parse_quantity(s: &str) -> Result<i128, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let p = split(s)?;
    let scale = interpret(p.suffix).ok_or(QuantityError::Suffix)?;
    // Mantissa: all digits of num and denom as one integer; saturate on overflow.
    let mut mantissa: i128 = 0;
    for c in p.num.bytes().chain(p.denom.bytes()) {
        mantissa = mantissa
            .saturating_mul(10)
            .saturating_add(i128::from(c - b'0'));
    }
    let frac_len = i64::try_from(p.denom.len()).unwrap_or(i64::MAX);
    let (numerator, dec_exp) = match scale {
        Scale::Binary(bits) => (mantissa.saturating_mul(1i128 << bits), 3 - frac_len),
        Scale::Decimal(e) => (mantissa, e.saturating_add(3).saturating_sub(frac_len)),
    };
    let magnitude = if numerator == 0 {
        0
    } else if dec_exp >= 0 {
        match pow10(dec_exp.unsigned_abs()) {
            Some(f) => numerator.saturating_mul(f),
            None => i128::MAX,
        }
    } else {
        match pow10(dec_exp.unsigned_abs()) {
            Some(d) => {
                let q = numerator / d;
                if numerator % d == 0 { q } else { q + 1 }
            }
            // Smaller than any representable milli amount: rounds up to 1m.
            None => 1,
        }
    };
    Ok(if p.positive { magnitude } else { -magnitude })
}

/// Renders milli-units the way upstream prints small canonical quantities in messages
/// (`500m`, `2`).
pub fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// `milli` milli-units in upstream's canonical form: `500m`, `2`, `2k`, or with binary
/// suffixes (`1536Mi`) when `binary` (the quantity was written with one).
pub fn format_canonical(milli: i128, binary: bool) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let whole = milli / 1000;
    let units: &[(&str, i128)] = if binary {
        &[
            ("Ei", 1 << 60),
            ("Pi", 1 << 50),
            ("Ti", 1 << 40),
            ("Gi", 1 << 30),
            ("Mi", 1 << 20),
            ("Ki", 1 << 10),
        ]
    } else {
        &[
            ("E", 1_000_000_000_000_000_000),
            ("P", 1_000_000_000_000_000),
            ("T", 1_000_000_000_000),
            ("G", 1_000_000_000),
            ("M", 1_000_000),
            ("k", 1_000),
        ]
    };
    for (suffix, size) in units {
        if whole != 0 && whole % size == 0 {
            return format!("{}{suffix}", whole / size);
        }
    }
    whole.to_string()
}

/// Whether a quantity string uses a binary suffix (`Ki` … `Ei`), which its canonical
/// form keeps.
pub fn is_binary(s: &str) -> bool {
    s.ends_with('i')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_upstream() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("1", 1000),
            ("100m", 100),
            ("0.5", 500),
            ("1.5Gi", 1_610_612_736_000),
            ("1Ki", 1_024_000),
            ("2k", 2_000_000),
            ("1e3", 1_000_000),
            ("1E", 1_000_000_000_000_000_000_000),
            ("1E3", 1_000_000),
            ("1e-3", 1),
            ("1n", 1),
            ("0.0001", 1),
            ("-1", -1000),
            ("+2", 2000),
            ("-", 0),
            (".", 0),
            ("1.", 1000),
            ("007", 7000),
        ];
        for (s, want) in cases {
            assert_eq!(parse_quantity(s), Ok(*want), "{s}");
        }
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(format_canonical(500, false), "500m");
        assert_eq!(format_canonical(2000, false), "2");
        assert_eq!(format_canonical(2_000_000, false), "2k");
        assert_eq!(format_canonical(1_610_612_736_000, true), "1536Mi");
        assert_eq!(format_canonical(1_500_000, true), "1500");
        assert_eq!(format_canonical(0, true), "0");
    }

    #[test]
    fn rejects_junk() {
        assert_eq!(parse_quantity(""), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("abc"), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("1 Gi"), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("1GB"), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("1Gb"), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("1KiB"), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("1Gii"), Err(QuantityError::Suffix));
        assert_eq!(parse_quantity("1e"), Err(QuantityError::Suffix));
        assert_eq!(parse_quantity("1mi"), Err(QuantityError::Suffix));
        assert_eq!(parse_quantity("1.2.3"), Err(QuantityError::FormatWrong));
        assert_eq!(parse_quantity("é"), Err(QuantityError::FormatWrong));
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(parse_quantity("1e99999"), Ok(i128::MAX));
        assert_eq!(parse_quantity(&"9".repeat(100)), Ok(i128::MAX));
        assert_eq!(
            parse_quantity("99999999999999999999999999Ei"),
            Ok(i128::MAX)
        );
        assert_eq!(parse_quantity("1e-99999"), Ok(1));
        assert_eq!(parse_quantity("1e-9223372036854775808"), Ok(1));
        assert_eq!(parse_quantity("1e9223372036854775807"), Ok(i128::MAX));
    }

    #[test]
    fn formats_milli() {
        assert_eq!(format_milli(2000), "2");
        assert_eq!(format_milli(500), "500m");
    }
}
