//! The audience CSV reader and the suppression list, any bytes. The first byte picks the
//! options (delimiter override, default region). Invariants: no panic; whole-file errors name
//! the file; rows come out in file order with line numbers inside the file; every line is
//! accounted for; valid addresses look like addresses (emails have an '@', phones are E.164).
#![no_main]

use std::path::Path;

use announce::audience::{self, Address, AudienceOptions, Suppressions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&opts, body)) = data.split_first() else {
        return;
    };
    let o = AudienceOptions::from_fuzz_byte(opts);
    // Physical lines: LF, CRLF and lone CR all end one.
    let lines = 1 + body
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && body.get(i + 1) != Some(&b'\n')))
        .count() as u64;
    match audience::parse(Path::new("c.csv"), body, &o) {
        Ok(a) => {
            // Every line is the header, blank, or part of a row that came out.
            assert!(a.account.balanced(), "{:?}", a.account);
            assert!(a.account.lines <= lines, "{:?} of {lines}", a.account);
            let mut last = 0;
            for r in &a.recipients {
                assert!(r.line > last, "recipient lines must increase: {} after {last}", r.line);
                assert!(r.line <= lines, "line {} of {lines}", r.line);
                last = r.line;
                if let Address::Valid(e) = &r.email {
                    assert!(e.contains('@') && e.trim() == e);
                }
                if let Address::Valid(p) = &r.phone {
                    assert!(
                        p.starts_with('+') && p[1..].bytes().all(|b| b.is_ascii_digit()),
                        "{p:?}"
                    );
                }
                assert!(!matches!(&r.email, Address::Invalid { reason, .. } if reason.is_empty()));
            }
            for e in &a.rejected {
                assert!(e.line >= 1 && e.line <= lines, "rejected line {} of {lines}", e.line);
            }
        }
        Err(e) => assert!(e.to_string().starts_with("c.csv: "), "{e}"),
    }
    let s = Suppressions::parse(&String::from_utf8_lossy(body), o.default_region);
    for r in s.rejected() {
        assert!(r.line >= 1 && r.line <= lines);
    }
});
