//! What the start-up benchmarks share: their arguments and how they print latencies.

use anyhow::Context;

/// Positional argument `i` as a number, `default` when absent.
pub fn number_arg(args: &[String], i: usize, what: &str, default: usize) -> anyhow::Result<usize> {
    Ok(args
        .get(i)
        .map(|s| s.parse())
        .transpose()
        .with_context(|| format!("{what} must be a number"))?
        .unwrap_or(default))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One `latency_ms` line per value, `<label> <done>/<n>`, then the `p50/p90/p99_ms` lines
/// scripts/bench-startup.sh reads.
pub fn print_latencies(mut lat: Vec<f64>, label: &str, n: usize) {
    lat.sort_by(f64::total_cmp);
    for l in &lat {
        println!("latency_ms {l:.1}");
    }
    println!("{label} {}/{n}", lat.len());
    for p in [50.0, 90.0, 99.0] {
        println!("p{p}_ms {:.1}", percentile(&lat, p));
    }
}
