//! Resource quantities (`1Gi`, `500M`, `1.5e9`) as the storage kinds need them: parsed into exact nano-units
//! so that requests and capacities compare without floating point.

/// kube's quantity syntax error (what the API server answers for a malformed quantity).
pub const QUANTITY_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity in nano-units (`1` = 1_000_000_000), rounded up below a nano-unit. `None` when `text` is not a
/// quantity or is too large to hold (beyond ~10^29 units, far past any real volume).
pub fn parse(text: &str) -> Option<i128> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let number_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    // Leading zeros carry no value; what is left must fit an i128 with room for the scaling.
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return None;
    }
    let mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.trim_start_matches(['+', '-']);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (exp.parse::<i32>().ok().filter(|e| e.abs() <= 40)?, 0)
        }
        _ => return None,
    };
    // value = mantissa * 10^(exp10 - frac_len) * 2^exp2, in nano-units: exp10 + 9.
    let scale = exp10 + 9 - i32::try_from(frac_part.len()).ok()?;
    let mut value = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if scale >= 0 {
        value = value.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?;
    } else {
        let divisor = 10i128.checked_pow(scale.unsigned_abs())?;
        value = value.div_euclid(divisor) + i128::from(value.rem_euclid(divisor) != 0);
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_kube_quantities() {
        const G: i128 = 1_000_000_000;
        assert_eq!(parse("1"), Some(G));
        assert_eq!(parse("1Gi"), Some((1 << 30) * G));
        assert_eq!(parse("1024Mi"), parse("1Gi"));
        assert_eq!(parse("1G"), Some(1_000_000_000 * G));
        assert_eq!(parse("1e9"), parse("1G"));
        assert_eq!(parse("1.5Gi"), Some((3 << 29) * G));
        assert_eq!(parse("500m"), Some(G / 2));
        assert_eq!(parse("0"), Some(0));
        assert_eq!(parse("-1Mi"), Some(-(1 << 20) * G));
        assert_eq!(parse("0.5n"), Some(1));
        for bad in [
            "", "Gi", "1GB", "1..2", "1.2.3", "abc", "1e", "1e+x", "1 Gi",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(parse("1e40").is_none());
    }
}
