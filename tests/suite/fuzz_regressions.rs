//! Inputs the fuzz targets (fuzz/) found, kept as regression tests. Each file in
//! fuzz/regressions/ is named `<target>-<what>-<n>`.

use std::path::Path;

use announce::audience::{self, AudienceOptions};

/// Parse as the `audience` fuzz target does: the first byte picks the options.
fn parse_like_the_target(data: &[u8]) -> Result<audience::Audience, audience::AudienceError> {
    let (&opts, body) = data.split_first().unwrap();
    audience::parse(Path::new("c.csv"), body, &AudienceOptions::from_fuzz_byte(opts))
}

/// Slow units (libFuzzer: more than 10 s under AddressSanitizer): a few dozen phone numbers
/// of rare regions. Their speed is the fuzzer's to watch (`cargo fuzz run audience` with its
/// `-timeout`, see fuzz/); here they must parse to the same result every time: every row read,
/// the same recipients on the same lines, the same rows rejected.
fn assert_parses_to(data: &[u8], recipient_lines: &[u64], rejected: usize) {
    let a = parse_like_the_target(data).unwrap();
    let lines: Vec<u64> = a.recipients.iter().map(|r| r.line).collect();
    assert_eq!(lines, recipient_lines, "recipients by line");
    assert_eq!(a.rejected.len(), rejected, "rejected rows");
}

#[test]
fn audience_slow_unit_1_parses() {
    assert_parses_to(
        include_bytes!("../../fuzz/regressions/audience-slow-1"),
        &[2, 3, 5, 6, 9],
        1,
    );
}

#[test]
fn audience_slow_unit_2_parses() {
    assert_parses_to(
        include_bytes!("../../fuzz/regressions/audience-slow-2"),
        &[2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24],
        4,
    );
}
