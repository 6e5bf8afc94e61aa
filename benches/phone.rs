//! `cargo bench --bench phone [N]`: N (default 200,000) numbers in bench/gen_audience.py's
//! style (German mobiles, half `+49 151 ...`, half `0151 ...`) through what planning does with
//! a phone cell: normalise it, then ask whether an SMS channel takes it. Prints the wall time;
//! run it under `valgrind --tool=callgrind` for instruction counts.

use std::time::Instant;

use announce::audience::address::normalize_phone;
use announce::phone::{Reachable, skip_reason};
use phonenumber::country::Id;

fn main() {
    // `cargo test --all-targets` runs this too, without `--bench`: then a few numbers only, so
    // the test run checks that it works without timing a debug build.
    let benching = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(if benching { 200_000 } else { 100 });
    let prefixes = ["151", "152", "157", "159"];
    let numbers: Vec<String> = (0..n)
        .map(|i| {
            let prefix = prefixes[i % prefixes.len()];
            if i % 2 == 0 {
                format!("+49 {prefix} {i:08}")
            } else {
                format!("0{prefix} {i:08}")
            }
        })
        .collect();
    let start = Instant::now();
    let mut valid = 0;
    let mut skipped = 0;
    for raw in &numbers {
        if let Ok(e164) = normalize_phone(raw, Some(Id::DE)) {
            valid += 1;
            skipped += usize::from(skip_reason(&e164, Reachable::Texts).is_some());
        }
    }
    let took = start.elapsed();
    println!(
        "{n} numbers: {valid} valid, {skipped} not for texts, {:.3} s ({:.0} ns/number)",
        took.as_secs_f64(),
        took.as_nanos() as f64 / n as f64
    );
}
