//! The config loader (`channels.toml`), any bytes. Invariants: no panic; an error names the
//! file, and its line and column (when it has them) are inside the input; an accepted config
//! has valid channel names and resolves paths under its folder.
#![no_main]

use std::path::Path;

use announce::config::Config;
use announce::error::AppError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.matches('\n').count() + 1;
    match Config::parse(Some(Path::new("channels.toml")), Path::new("/base"), text.to_string()) {
        Ok(c) => {
            assert!(c.state_dir.starts_with("/base") || c.state_dir.is_absolute());
            for ch in &c.channels {
                assert!(!ch.name.is_empty());
                assert!(ch.location.line >= 1 && ch.location.line <= lines);
                let l = c.locate(&ch.location, "type");
                assert!(l.line >= 1 && l.line <= lines);
                let _ = c.channel(&ch.name).expect("a channel finds itself");
            }
            let _ = c.timezone();
        }
        Err(AppError::Invalid { location, message }) => {
            assert!(!message.is_empty());
            match location {
                Some(l) => {
                    assert_eq!(l.file, "channels.toml");
                    assert!(l.line >= 1 && l.line <= lines, "line {} of {lines}", l.line);
                }
                None => assert!(
                    message.starts_with("channels.toml") || message.starts_with("invalid config"),
                    "{message}"
                ),
            }
        }
        Err(e) => panic!("parse returned a runtime error: {e}"),
    }
});
