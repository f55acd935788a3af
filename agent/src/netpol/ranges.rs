//! IPv4 address ranges for the peer sets: an `ipBlock`'s `cidr` minus its `except`s, merged with pod
//! addresses, so the elements of one interval set never overlap (nft refuses overlapping intervals unless
//! the set auto-merges, and then the result depends on the kernel's version).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// An inclusive range of addresses, as `u32`s.
pub type Range = (u32, u32);

/// The addresses of `cidr` that are in none of `except`.
pub fn block(cidr: Ipv4Net, except: &[Ipv4Net]) -> Vec<Range> {
    let mut left = vec![bounds(cidr)];
    for e in except {
        let (lo, hi) = bounds(*e);
        let mut next = Vec::with_capacity(left.len() + 1);
        for (a, b) in left {
            if hi < a || lo > b {
                next.push((a, b));
                continue;
            }
            // `lo > a` implies lo > 0 and `hi < b` implies hi < u32::MAX: no overflow.
            if lo > a {
                next.push((a, lo - 1));
            }
            if hi < b {
                next.push((hi + 1, b));
            }
        }
        left = next;
    }
    left
}

/// One address as a range.
pub fn single(ip: Ipv4Addr) -> Range {
    let n = u32::from(ip);
    (n, n)
}

/// `ranges` sorted, with overlapping and adjacent ranges joined.
pub fn merge(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The nft element of a range: `10.0.0.1` or `10.0.0.0-10.0.0.255`.
pub fn element((a, b): Range) -> String {
    if a == b {
        Ipv4Addr::from(a).to_string()
    } else {
        format!("{}-{}", Ipv4Addr::from(a), Ipv4Addr::from(b))
    }
}

fn bounds(net: Ipv4Net) -> Range {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn show(r: Vec<Range>) -> Vec<String> {
        r.into_iter().map(element).collect()
    }

    #[test]
    fn except_cuts_holes() {
        let got = block(
            net("10.0.0.0/24"),
            &[net("10.0.0.16/28"), net("10.0.0.255/32")],
        );
        assert_eq!(show(got), ["10.0.0.0-10.0.0.15", "10.0.0.32-10.0.0.254"]);
        // An except covering everything leaves nothing; one outside the block changes nothing.
        assert!(block(net("10.0.0.0/24"), &[net("10.0.0.0/16")]).is_empty());
        assert_eq!(
            show(block(net("0.0.0.0/0"), &[net("192.168.0.0/16")])),
            ["0.0.0.0-192.167.255.255", "192.169.0.0-255.255.255.255"]
        );
    }

    #[test]
    fn merge_joins_overlaps_and_neighbours() {
        let got = merge(vec![
            single("10.0.0.5".parse().unwrap()),
            (
                u32::from(Ipv4Addr::new(10, 0, 0, 0)),
                u32::from(Ipv4Addr::new(10, 0, 0, 4)),
            ),
            single("10.0.0.9".parse().unwrap()),
            single("10.0.0.9".parse().unwrap()),
            bounds(net("0.0.0.0/1")),
            (u32::MAX, u32::MAX),
        ]);
        assert_eq!(show(got), ["0.0.0.0-127.255.255.255", "255.255.255.255"]);
        let got = merge(vec![
            single("10.0.0.9".parse().unwrap()),
            single("10.0.0.7".parse().unwrap()),
        ]);
        assert_eq!(show(got), ["10.0.0.7", "10.0.0.9"]);
    }
}
