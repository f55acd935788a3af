//! Cron schedules as kube's CronJobs read them (robfig/cron v3 `ParseStandard`): five fields (minute,
//! hour, day of month, month, day of week) of lists, ranges, steps, `*`/`?` and month and weekday names,
//! the `@yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly` descriptors and a `TZ=`/`CRON_TZ=`
//! prefix. The error messages are robfig's, since kube shows them in its 422 answers.
//!
//! [`Schedule::next`] is robfig's `SpecSchedule.Next`: walk forward month, day, hour, minute in the
//! schedule's time zone; day of month and day of week are OR-ed unless one of them is `*` (or `?`).

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Set on a field written as `*` or `?` (with no step above 1): it then does not restrict the day.
const STAR: u64 = 1 << 63;

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// The zone of a `TZ=`/`CRON_TZ=` prefix.
    zone: Option<String>,
}

/// Parse a schedule (robfig's `ParseStandard`).
pub fn parse(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(space) = spec.find(' ') else {
            return Err(format!(
                "provided bad location {}: missing schedule",
                &spec[eq + 1..]
            ));
        };
        let name = &spec[eq + 1..space];
        load_zone(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
        zone = Some(name.to_string());
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        let fields = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            // robfig's `@every <duration>` is a constant delay, not a calendar schedule; skiff leaves it out.
            _ => return Err(format!("unrecognized descriptor: {spec}")),
        };
        return parse(fields).map(|s| Schedule { zone, ..s });
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    Ok(Schedule {
        minute: field(fields[0], &MINUTES)?,
        hour: field(fields[1], &HOURS)?,
        dom: field(fields[2], &DAYS_OF_MONTH)?,
        month: field(fields[3], &MONTHS)?,
        dow: field(fields[4], &DAYS_OF_WEEK)?,
        zone,
    })
}

/// A time zone by IANA name from the system's zoneinfo (`UTC` and `Local` always exist).
pub fn load_zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

/// A comma-separated list of ranges.
fn field(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    expr.split(',')
        .try_fold(0, |bits, part| Ok(bits | range(part, bounds)?))
}

/// `*`, `?`, `n`, `a-b`, any of these with `/step` (`n/step` runs to the maximum).
fn range(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (start, end, extra) = (bounds.min, bounds.max, STAR);
    } else {
        start = int_or_name(low_and_high[0], bounds)?;
        end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], bounds)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = int(range_and_step[1])?;
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            bounds.min
        ));
    }
    if end > bounds.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            bounds.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let bits = (start..=end)
        .step_by(step as usize)
        .fold(0u64, |bits, v| bits | 1 << v);
    Ok(bits | extra)
}

fn int_or_name(expr: &str, bounds: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    match bounds.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => int(expr),
    }
}

/// Go's `strconv.Atoi` with robfig's wording; negative numbers are refused.
fn int(expr: &str) -> Result<u32, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: invalid syntax"
        ));
    }
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: value out of range"
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    // Anything above 63 fails the bounds check anyway.
    Ok(u32::try_from(n.min(1 << 20)).unwrap_or(u32::MAX))
}

fn has(bits: u64, v: i8) -> bool {
    bits & (1 << v) != 0
}

impl Schedule {
    /// The zone of a `TZ=`/`CRON_TZ=` prefix, if any.
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref()
    }

    fn day_matches(&self, t: &Zoned) -> bool {
        let dom = has(self.dom, t.day());
        let dow = has(self.dow, t.weekday().to_sunday_zero_offset());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first activation strictly after `after`, in `zone` (the prefix's zone wins); `None` when there
    /// is none within five years (`0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let zone = match &self.zone {
            Some(name) => load_zone(name).ok()?,
            None => zone.clone(),
        };
        // Round up to the next whole second.
        let sub = after.subsec_nanosecond();
        let t = after.checked_add(1.second()).ok()?;
        let t = t.checked_sub((sub as i64).nanoseconds()).ok()?;
        let mut t = t.to_zoned(zone.clone());
        let year_limit = t.year() + 5;
        let mut added = false;
        let midnight = |t: &Zoned, day: i8| {
            jiff::civil::date(t.year(), t.month(), day)
                .to_zoned(zone.clone())
                .ok()
        };
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while !has(self.month, t.month()) {
                if !added {
                    added = true;
                    t = midnight(&t, 1)?;
                }
                t = t.checked_add(1.month()).ok()?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&t) {
                if !added {
                    added = true;
                    t = midnight(&t, t.day())?;
                }
                t = t.checked_add(1.day()).ok()?;
                // A DST change may leave the day starting at 23:00 or 01:00.
                if t.hour() != 0 {
                    let shift = if t.hour() > 12 {
                        i64::from(24 - t.hour())
                    } else {
                        -i64::from(t.hour())
                    };
                    t = t.checked_add(shift.hours()).ok()?;
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while !has(self.hour, t.hour()) {
                if !added {
                    added = true;
                    t = t
                        .with()
                        .minute(0)
                        .second(0)
                        .subsec_nanosecond(0)
                        .build()
                        .ok()?;
                }
                t = t.checked_add(1.hour()).ok()?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !has(self.minute, t.minute()) {
                if !added {
                    added = true;
                    t = t.with().second(0).subsec_nanosecond(0).build().ok()?;
                }
                t = t.checked_add(1.minute()).ok()?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            // Standard schedules fire at second 0.
            while t.second() != 0 {
                added = true;
                t = t.checked_add(1.second()).ok()?;
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(t.timestamp());
        }
    }
}

#[cfg(test)]
mod tests;
