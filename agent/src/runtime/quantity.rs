//! Kubernetes resource quantities (`500m`, `1.5`, `64Mi`, `1e9`) as exact integers.

/// Parse a quantity into thousandths of its unit, rounding up like the API machinery does.
pub fn parse_milli(s: &str) -> Result<i128, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty quantity".to_string());
    }
    let (sign, body) = match s.as_bytes()[0] {
        b'-' => (-1i128, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(format!("quantity {s:?}: no number"));
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 30 {
        return Err(format!("quantity {s:?}: too many digits"));
    }
    let mantissa: i128 = digits
        .parse()
        .map_err(|_| format!("quantity {s:?}: bad number"))?;
    let mut scale: i32 = -(frac_part.len() as i32);
    let mut binary: u32 = 0;
    match suffix {
        "" => {}
        "n" => scale -= 9,
        "u" => scale -= 6,
        "m" => scale -= 3,
        "k" => scale += 3,
        "M" => scale += 6,
        "G" => scale += 9,
        "T" => scale += 12,
        "P" => scale += 15,
        "E" => scale += 18,
        "Ki" => binary = 10,
        "Mi" => binary = 20,
        "Gi" => binary = 30,
        "Ti" => binary = 40,
        "Pi" => binary = 50,
        "Ei" => binary = 60,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..]
                .parse()
                .map_err(|_| format!("quantity {s:?}: bad exponent"))?;
            if exp.abs() > 30 {
                return Err(format!("quantity {s:?}: exponent out of range"));
            }
            scale += exp;
        }
        other => return Err(format!("quantity {s:?}: unknown suffix {other:?}")),
    }
    scale += 3; // milli units
    let mut value = mantissa
        .checked_mul(1i128 << binary)
        .ok_or_else(|| format!("quantity {s:?}: too large"))?;
    if scale >= 0 {
        let factor = 10i128
            .checked_pow(scale as u32)
            .ok_or_else(|| format!("quantity {s:?}: too large"))?;
        value = value
            .checked_mul(factor)
            .ok_or_else(|| format!("quantity {s:?}: too large"))?;
    } else {
        let divisor = 10i128
            .checked_pow((-scale) as u32)
            .ok_or_else(|| format!("quantity {s:?}: too small"))?;
        value = (value + divisor - 1) / divisor;
    }
    Ok(sign * value)
}

/// CPU in millicores.
pub fn cpu_millis(s: &str) -> Result<i64, String> {
    i64::try_from(parse_milli(s)?).map_err(|_| format!("cpu quantity {s:?} out of range"))
}

/// Memory in bytes (fractions of a byte round up).
pub fn bytes(s: &str) -> Result<i64, String> {
    let milli = parse_milli(s)?;
    i64::try_from((milli + 999).div_euclid(1000))
        .map_err(|_| format!("memory quantity {s:?} out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu() {
        assert_eq!(cpu_millis("500m"), Ok(500));
        assert_eq!(cpu_millis("1"), Ok(1000));
        assert_eq!(cpu_millis("0.5"), Ok(500));
        assert_eq!(cpu_millis("2.25"), Ok(2250));
        assert_eq!(cpu_millis("100u"), Ok(1));
        assert_eq!(cpu_millis("1e3"), Ok(1_000_000));
    }

    #[test]
    fn memory() {
        assert_eq!(bytes("64Mi"), Ok(64 * 1024 * 1024));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("128974848"), Ok(128_974_848));
        assert_eq!(bytes("129e6"), Ok(129_000_000));
        assert_eq!(bytes("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(bytes("1k"), Ok(1000));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_milli("").is_err());
        assert!(parse_milli("abc").is_err());
        assert!(parse_milli("1.2.3").is_err());
        assert!(parse_milli("5Xi").is_err());
        assert!(parse_milli("1e999").is_err());
        assert!(parse_milli("99999999999999999999999999999999999").is_err());
    }
}
