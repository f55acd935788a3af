//! How metrics-server writes what it serves: quantities in Kubernetes' canonical form (`resource.Quantity`),
//! durations as Go's `time.Duration.String()` (`window`), and `--metric-resolution` as a Go duration.

use std::time::{Duration, SystemTime};

/// Decimal SI suffixes by power of ten (multiples of three), from nano up.
const DECIMAL: &[(i32, &str)] = &[
    (-9, "n"),
    (-6, "u"),
    (-3, "m"),
    (0, ""),
    (3, "k"),
    (6, "M"),
    (9, "G"),
    (12, "T"),
    (15, "P"),
    (18, "E"),
];

/// `value × 10^exp` in canonical DecimalSI form: trailing zeros folded into the largest suffix that keeps the
/// number whole (`1500000000n` → `1500m`, `2000000000n` → `2`), as `resource.Quantity` prints it.
fn decimal(value: u64, exp: i32) -> String {
    if value == 0 {
        return "0".into();
    }
    let (mut n, mut e) = (value, exp);
    while n % 10 == 0 && e < 18 {
        n /= 10;
        e += 1;
    }
    // Back down to a multiple of three.
    while e.rem_euclid(3) != 0 {
        n = n.saturating_mul(10);
        e -= 1;
    }
    let suffix = DECIMAL
        .iter()
        .find(|(p, _)| *p == e)
        .map(|(_, s)| *s)
        .unwrap_or("");
    format!("{n}{suffix}")
}

/// CPU in nanocores as metrics-server serves it (`resource.NewScaledQuantity(n, -9)`, DecimalSI).
pub fn cpu(nanocores: u64) -> String {
    decimal(nanocores, -9)
}

/// Memory in bytes as metrics-server serves it (BinarySI: `Ki`, `Mi`, … when divisible by 1024, plain
/// bytes otherwise; below 1024 kube prints the DecimalSI form).
pub fn memory(bytes: u64) -> String {
    if bytes < 1024 {
        return decimal(bytes, 0);
    }
    const BINARY: &[&str] = &["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let (mut n, mut i) = (bytes, 0);
    while n % 1024 == 0 && i + 1 < BINARY.len() {
        n /= 1024;
        i += 1;
    }
    format!("{n}{}", BINARY[i])
}

/// Go's `time.Duration.String()`: `15.002s`, `1m0.5s`, `2h0m0s`, `500ms`, `0s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(ns, div));
    }
    let h = ns / 3_600_000_000_000;
    let m = (ns / 60_000_000_000) % 60;
    let s = fraction(ns % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `n / div` with the fraction's trailing zeros dropped (`15002000000 / 1e9` → `15.002`).
fn fraction(n: u128, div: u128) -> String {
    let (whole, rest) = (n / div, n % div);
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// A Go duration (`15s`, `1m30s`, `1.5m`, `11500ms`), as `--metric-resolution` takes it.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// RFC 3339 in whole seconds (`metav1.Time`).
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|t| t.to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_canonical_form() {
        assert_eq!(cpu(0), "0");
        assert_eq!(cpu(12_345), "12345n");
        assert_eq!(cpu(156_210_151), "156210151n");
        assert_eq!(cpu(1_044_000), "1044u");
        assert_eq!(cpu(1_500_000_000), "1500m");
        assert_eq!(cpu(2_000_000_000), "2");
        assert_eq!(memory(0), "0");
        assert_eq!(memory(13_639_680), "13320Ki");
        assert_eq!(memory(64 * 1024 * 1024), "64Mi");
        assert_eq!(memory(123_456_789), "123456789");
        assert_eq!(memory(1000), "1k");
        assert_eq!(memory(512), "512");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_millis(15_002)), "15.002s");
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_millis(60_500)), "1m0.5s");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(parse_go_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_go_duration("11500ms"),
            Ok(Duration::from_millis(11_500))
        );
        assert!(parse_go_duration("15").is_err());
        assert!(parse_go_duration("abc").is_err());
        assert!(parse_go_duration("").is_err());
    }

    #[test]
    fn timestamps_in_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_686_743_454_383);
        assert_eq!(timestamp(t), "2023-06-14T11:50:54Z");
    }
}
