//! The announcement parser: Markdown with `+++` TOML front matter, any bytes.
//! Invariants: no panic; every error names the file with a line and column inside the input;
//! an accepted announcement has a non-empty title and renders to HTML and text.
#![no_main]

use std::path::Path;

use announce::announcement::Announcement;
use announce::error::{AppError, SourceLocation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = match std::str::from_utf8(data) {
        Ok(t) => t.to_string(),
        Err(e) => {
            // What `Announcement::load` does for a file that is not UTF-8.
            let lossy = String::from_utf8_lossy(data);
            let loc = SourceLocation::from_offset("n.md", &lossy, e.valid_up_to());
            assert!(loc.line >= 1 && loc.column >= 1);
            lossy.into_owned()
        }
    };
    let lines = text.matches('\n').count() + 1;
    match Announcement::parse("n.md", Path::new("."), text.clone()) {
        Ok(a) => {
            assert!(!a.meta.title.trim().is_empty());
            assert!(a.source == text);
            for key in ["title", "summary", "channels", "image", "nope"] {
                let l = a.locate(key);
                assert!(l.line >= 1 && l.line <= lines);
            }
        }
        Err(AppError::Invalid { location, message }) => {
            let l = location.expect("announcement errors carry a location");
            assert_eq!(l.file, "n.md");
            assert!(l.line >= 1 && l.line <= lines, "line {} of {lines}", l.line);
            assert!(l.column >= 1);
            assert!(!message.is_empty());
        }
        Err(e) => panic!("parse returned a runtime error: {e}"),
    }
});
