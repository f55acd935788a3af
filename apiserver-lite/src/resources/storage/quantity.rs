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

/// The suffix family a quantity was written in: kube prints a quantity back in its own family
/// (`resource.Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `m`, `k`, `M`, `G`, … or no suffix.
    DecimalSI,
    /// `Ki`, `Mi`, `Gi`, …
    BinarySI,
    /// `e3`, `E-6`, …
    DecimalExponent,
}

/// A parsed quantity that remembers its format, so that it prints as kube's `Quantity.String()` does
/// (`1024Mi` → `1Gi`, `0.5` → `500m`, `1e3` → `1e3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    /// The value in nano-units (see [`parse`]).
    pub nano: i128,
    pub format: Format,
}

impl Quantity {
    /// Parse `text` (see [`parse`]); `None` when it is not a quantity.
    pub fn parse(text: &str) -> Option<Self> {
        let nano = parse(text)?;
        let suffix = text.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c));
        let format = if suffix.ends_with('i') {
            Format::BinarySI
        } else if suffix.starts_with(['e', 'E']) && suffix.len() > 1 {
            Format::DecimalExponent
        } else {
            Format::DecimalSI
        };
        Some(Quantity { nano, format })
    }

    /// A quantity of `milli` thousandths in the decimal SI format (kube's `NewMilliQuantity`).
    pub fn from_milli(milli: i128) -> Self {
        Quantity {
            nano: milli.saturating_mul(1_000_000),
            format: Format::DecimalSI,
        }
    }

    /// The value rounded up to whole units (kube's `Value()`).
    pub fn value(&self) -> i128 {
        ceil_div(self.nano, 1_000_000_000)
    }

    /// The value rounded up to thousandths (kube's `MilliValue()`).
    pub fn milli_value(&self) -> i128 {
        ceil_div(self.nano, 1_000_000)
    }
}

fn ceil_div(n: i128, d: i128) -> i128 {
    n.div_euclid(d) + i128::from(n.rem_euclid(d) != 0)
}

/// kube's canonical rendering (`CanonicalizeBytes`): decimal values as the smallest integer mantissa
/// with an exponent that is a multiple of 3; binary values, when whole and at least 1024, as the
/// smallest integer mantissa times a power of 1024.
impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const GIGA: i128 = 1_000_000_000;
        let sign = if self.nano < 0 { "-" } else { "" };
        let abs = self.nano.unsigned_abs();
        if self.format == Format::BinarySI
            && abs >= 1024 * GIGA.unsigned_abs()
            && abs.is_multiple_of(1_000_000_000)
        {
            let mut mantissa = abs / 1_000_000_000;
            let mut power = 0;
            while power < 6 && mantissa.is_multiple_of(1024) {
                mantissa /= 1024;
                power += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
            return write!(f, "{sign}{mantissa}{suffix}");
        }
        if abs == 0 {
            return f.write_str("0");
        }
        let (mut mantissa, mut exp) = (abs, -9i32);
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exp += 1;
        }
        while exp.rem_euclid(3) != 0 {
            mantissa *= 10;
            exp -= 1;
        }
        let si = match exp {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        match (self.format, si) {
            (Format::DecimalExponent, _) | (_, None) if exp != 0 => {
                write!(f, "{sign}{mantissa}e{exp}")
            }
            (_, suffix) => write!(f, "{sign}{mantissa}{}", suffix.unwrap_or("")),
        }
    }
}

/// `text` as kube prints it back (`Quantity.String()`); `None` when it is not a quantity.
pub fn canonical(text: &str) -> Option<String> {
    Quantity::parse(text).map(|q| q.to_string())
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

    #[test]
    fn prints_like_kube() {
        use super::canonical;
        for (text, want) in [
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("1000Mi", "1000Mi"),
            ("1.5Gi", "1536Mi"),
            ("512", "512"),
            ("100Ki", "100Ki"),
            ("0.5Ki", "512"),
            ("0.5", "500m"),
            ("100m", "100m"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("2000", "2k"),
            ("1e3", "1e3"),
            ("1.5e3", "1500"),
            ("0", "0"),
            ("-100m", "-100m"),
            ("1G", "1G"),
            ("128974848", "128974848"),
            ("129e6", "129e6"),
            ("129M", "129M"),
        ] {
            assert_eq!(canonical(text).as_deref(), Some(want), "{text}");
        }
        assert_eq!(canonical("1x"), None);
        assert_eq!(super::Quantity::from_milli(2500).to_string(), "2500m");
    }
}
