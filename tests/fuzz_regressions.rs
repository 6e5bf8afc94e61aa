//! Inputs the fuzz targets (fuzz/) found, kept as regression tests. Each file in
//! fuzz/regressions/ is named `<target>-<what>-<n>`.

use std::path::Path;
use std::time::{Duration, Instant};

use announce::audience::{self, AudienceOptions};

/// Parse as the `audience` fuzz target does: the first byte picks the options.
fn parse_like_the_target(data: &[u8]) -> Result<audience::Audience, audience::AudienceError> {
    let (&opts, body) = data.split_first().unwrap();
    let delimiter = match opts & 3 {
        0 => None,
        1 => Some(b','),
        2 => Some(b';'),
        _ => Some(b'\t'),
    };
    let default_region = (opts & 4 != 0).then(|| audience::parse_region("DE").unwrap());
    audience::parse(
        Path::new("c.csv"),
        body,
        &AudienceOptions {
            delimiter,
            default_region,
            encoding: None,
        },
    )
}

/// Slow units (libFuzzer: more than 10 s under AddressSanitizer): a few dozen phone numbers
/// of rare regions. Outside the fuzzer they take milliseconds; kept so it stays that way.
fn assert_fast(data: &[u8]) {
    // The phone number metadata loads on first use: not what is measured.
    let _ = audience::normalize_phone("+49 30 1234567", None);
    let t = Instant::now();
    let a = parse_like_the_target(data).unwrap();
    let took = t.elapsed();
    println!(
        "{} recipients, {} rejected in {took:?}",
        a.recipients.len(),
        a.rejected.len()
    );
    for r in &a.recipients {
        println!("{} {:?} {:?}", r.line, r.email, r.phone);
    }
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[test]
fn audience_slow_unit_1_is_fast() {
    assert_fast(include_bytes!("../fuzz/regressions/audience-slow-1"));
}

#[test]
fn audience_slow_unit_2_is_fast() {
    assert_fast(include_bytes!("../fuzz/regressions/audience-slow-2"));
}
