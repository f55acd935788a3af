use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// The next activation in UTC, as RFC 3339.
fn next(spec: &str, after: &str) -> String {
    let s = parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
    s.next(ts(after), &TimeZone::UTC)
        .map(|t| t.to_string())
        .unwrap_or_else(|| "none".into())
}

fn err(spec: &str) -> String {
    parse(spec).expect_err(spec)
}

#[test]
fn every_syntax_element() {
    assert_eq!(
        next("* * * * *", "2024-01-01T00:00:00Z"),
        "2024-01-01T00:01:00Z"
    );
    assert_eq!(
        next("* * * * *", "2024-01-01T00:00:30.5Z"),
        "2024-01-01T00:01:00Z"
    );
    assert_eq!(
        next("*/15 * * * *", "2024-01-01T00:16:00Z"),
        "2024-01-01T00:30:00Z"
    );
    assert_eq!(
        next("5 * * * *", "2024-01-01T00:05:00Z"),
        "2024-01-01T01:05:00Z"
    );
    assert_eq!(
        next("10-12 3 * * *", "2024-01-01T03:11:00Z"),
        "2024-01-01T03:12:00Z"
    );
    assert_eq!(
        next("10-12 3 * * *", "2024-01-01T03:12:00Z"),
        "2024-01-02T03:10:00Z"
    );
    assert_eq!(
        next("0-30/10 * * * *", "2024-01-01T00:21:00Z"),
        "2024-01-01T00:30:00Z"
    );
    assert_eq!(
        next("0-30/10 * * * *", "2024-01-01T00:31:00Z"),
        "2024-01-01T01:00:00Z"
    );
    // `n/step` runs from n to the maximum.
    assert_eq!(
        next("50/5 * * * *", "2024-01-01T00:56:00Z"),
        "2024-01-01T01:50:00Z"
    );
    assert_eq!(
        next("1,2,40 * * * *", "2024-01-01T00:02:00Z"),
        "2024-01-01T00:40:00Z"
    );
    assert_eq!(
        next("0 0 * JAN,mar *", "2024-01-31T12:00:00Z"),
        "2024-03-01T00:00:00Z"
    );
    assert_eq!(
        next("0 0 * * Mon-wed", "2024-01-04T00:00:00Z"),
        "2024-01-08T00:00:00Z"
    );
    assert_eq!(
        next("0 0 ? * sat", "2024-01-01T00:00:00Z"),
        "2024-01-06T00:00:00Z"
    );
    assert_eq!(
        next("  0   12 * * *  ", "2024-01-01T00:00:00Z"),
        "2024-01-01T12:00:00Z"
    );
}

#[test]
fn descriptors() {
    let at = "2024-05-15T10:30:00Z";
    assert_eq!(next("@hourly", at), "2024-05-15T11:00:00Z");
    assert_eq!(next("@daily", at), "2024-05-16T00:00:00Z");
    assert_eq!(next("@midnight", at), "2024-05-16T00:00:00Z");
    assert_eq!(next("@weekly", at), "2024-05-19T00:00:00Z");
    assert_eq!(next("@monthly", at), "2024-06-01T00:00:00Z");
    assert_eq!(next("@yearly", at), "2025-01-01T00:00:00Z");
    assert_eq!(next("@annually", at), "2025-01-01T00:00:00Z");
    assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
}

#[test]
fn month_and_year_ends() {
    assert_eq!(
        next("0 0 * * *", "2023-12-31T23:59:59Z"),
        "2024-01-01T00:00:00Z"
    );
    assert_eq!(
        next("59 23 31 * *", "2024-04-01T00:00:00Z"),
        "2024-05-31T23:59:00Z"
    );
    // Leap day: the next 29 February is four years on.
    assert_eq!(
        next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
        "2028-02-29T00:00:00Z"
    );
    assert_eq!(
        next("30 6 1 */3 *", "2024-11-15T00:00:00Z"),
        "2025-01-01T06:30:00Z"
    );
    // A date that never comes: no activation within five years.
    assert_eq!(next("0 0 30 2 *", "2024-01-01T00:00:00Z"), "none");
}

#[test]
fn day_of_month_or_day_of_week() {
    // Both restricted: either matches (1st of the month or any Friday).
    assert_eq!(
        next("0 0 1 * fri", "2024-01-01T00:00:00Z"),
        "2024-01-05T00:00:00Z"
    );
    assert_eq!(
        next("0 0 1 * fri", "2024-01-26T00:00:00Z"),
        "2024-02-01T00:00:00Z"
    );
    // One of them `*`: the other alone decides.
    assert_eq!(
        next("0 0 13 * *", "2024-01-01T00:00:00Z"),
        "2024-01-13T00:00:00Z"
    );
    assert_eq!(
        next("0 0 * * 5", "2024-01-01T00:00:00Z"),
        "2024-01-05T00:00:00Z"
    );
    // `*/1` is still a star; `*/2` restricts, so the days are OR-ed again.
    assert_eq!(
        next("0 0 */1 * 5", "2024-01-01T00:00:00Z"),
        "2024-01-05T00:00:00Z"
    );
    assert_eq!(
        next("0 0 */2 * 1", "2024-01-01T00:00:00Z"),
        "2024-01-03T00:00:00Z"
    );
    assert_eq!(
        next("0 0 */2 * 1", "2024-01-07T00:00:00Z"),
        "2024-01-08T00:00:00Z"
    );
}

#[test]
fn time_zones() {
    let s = parse("0 9 * * *").expect("valid");
    let ny = load_zone("America/New_York").expect("zoneinfo has New York");
    // 09:00 EST is 14:00 UTC; after the March DST change 09:00 EDT is 13:00 UTC.
    assert_eq!(
        s.next(ts("2024-03-09T15:00:00Z"), &ny)
            .map(|t| t.to_string()),
        Some("2024-03-10T13:00:00Z".into())
    );
    let prefixed = parse("CRON_TZ=Asia/Tokyo 0 9 * * *").expect("valid");
    assert_eq!(prefixed.zone(), Some("Asia/Tokyo"));
    assert_eq!(
        prefixed
            .next(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC)
            .map(|t| t.to_string()),
        Some("2024-01-02T00:00:00Z".into())
    );
    assert!(parse("TZ=UTC * * * * *").is_ok());
    assert_eq!(
        err("TZ=Mars/Olympus * * * * *"),
        "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
    );
}

#[test]
fn bad_expressions_have_robfig_messages() {
    assert_eq!(err(""), "empty spec string");
    assert_eq!(err("hello"), "expected exactly 5 fields, found 1: [hello]");
    assert_eq!(
        err("* * * * * *"),
        "expected exactly 5 fields, found 6: [* * * * * *]"
    );
    assert_eq!(
        err("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(
        err("* 24 * * *"),
        "end of range (24) above maximum (23): 24"
    );
    assert_eq!(
        err("* * 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert_eq!(
        err("* * * 13 *"),
        "end of range (13) above maximum (12): 13"
    );
    assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(
        err("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(
        err("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(err("*/2/3 * * * *"), "too many slashes: */2/3");
    assert_eq!(
        err("x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err("1, * * * *"),
        "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
    );
    assert_eq!(
        err("* * * foo *"),
        "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax"
    );
    assert_eq!(
        err("-5 * * * *"),
        "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
    );
}
