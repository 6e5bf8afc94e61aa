//! The suppression (opt-out) lists: the configured file (`[audience] suppress`) and the state
//! folder's own list, which the dispatcher appends to when a recipient unsubscribes (an SMS
//! STOP reply) so that every later run skips them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use phonenumber::country::Id;

use super::address::normalize_phone;
use super::{AudienceError, RowError};

/// The file name of the state folder's own suppression list (numbers that answered STOP...).
pub const STATE_SUPPRESSIONS: &str = "suppressed.txt";

/// The state folder's own suppression list.
pub fn state_file(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_SUPPRESSIONS)
}

/// Add an address to the state folder's own suppression list (e.g. a number that replied STOP):
/// every later run skips it.
pub fn add_to_state(state_dir: &Path, address: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    crate::fsutil::create_private_dir(state_dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state_file(state_dir))?;
    writeln!(f, "{address}")
}

/// Every suppression that applies: the configured list (`file`), if any, and the state
/// folder's own list, if it exists.
pub fn load_all(file: Option<&Path>, state_dir: &Path, region: Option<Id>) -> Result<Suppressions, String> {
    let mut s = match file {
        Some(p) => Suppressions::load(p, region).map_err(|e| e.to_string())?,
        None => Suppressions::default(),
    };
    let own = state_file(state_dir);
    if own.exists() {
        let extra = std::fs::read_to_string(&own).map_err(|e| format!("{}: {e}", own.display()))?;
        for line in extra
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if line.contains('@') {
                s.insert_email(line)
            } else {
                s.insert_phone(line)
            }
        }
    }
    Ok(s)
}

/// The opt-out list (`optouts.txt`): one email or phone per line, `#` comments.
#[derive(Debug, Clone, Default)]
pub struct Suppressions {
    /// Lowercased.
    emails: HashSet<String>,
    /// E.164.
    phones: HashSet<String>,
    /// Lines that could not be understood (e.g. a phone without country code
    /// and no default region): they suppress nothing, so callers should warn.
    rejected: Vec<RowError>,
}

impl Suppressions {
    /// Read and [`Suppressions::parse`] a file; a missing or unreadable file is
    /// an error naming it.
    pub fn load(path: &Path, region: Option<Id>) -> Result<Suppressions, AudienceError> {
        let bytes = std::fs::read(path).map_err(|source| AudienceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        Ok(Suppressions::parse(&String::from_utf8_lossy(bytes), region))
    }

    /// One entry per line. `#` starts a comment when it begins the line, follows
    /// whitespace, or has no `@` after it (so `a#b@example.com` stays an
    /// address). An entry containing `@` is an email (compared
    /// case-insensitively), anything else a phone normalised like the CSV.
    pub fn parse(text: &str, region: Option<Id>) -> Suppressions {
        let mut s = Suppressions::default();
        for (i, line) in text.lines().enumerate() {
            let entry = strip_comment(line).trim();
            if entry.is_empty() {
                continue;
            }
            if entry.contains('@') {
                s.insert_email(entry);
                continue;
            }
            match normalize_phone(entry, region) {
                Ok(e164) => s.insert_phone(&e164),
                Err(reason) => s.rejected.push(RowError {
                    line: i as u64 + 1,
                    reason,
                }),
            }
        }
        s
    }

    pub fn insert_email(&mut self, e: &str) {
        self.emails.insert(e.trim().to_lowercase());
    }

    pub fn insert_phone(&mut self, e164: &str) {
        self.phones.insert(e164.trim().to_string());
    }

    pub fn contains_email(&self, e: &str) -> bool {
        self.emails.contains(&e.trim().to_lowercase())
    }

    pub fn contains_phone(&self, e164: &str) -> bool {
        self.phones.contains(e164.trim())
    }

    /// Number of distinct entries (emails + phones).
    pub fn len(&self) -> usize {
        self.emails.len() + self.phones.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines of the parsed text that were not understood (line number, reason).
    pub fn rejected(&self) -> &[RowError] {
        &self.rejected
    }
}

fn strip_comment(line: &str) -> &str {
    for (i, c) in line.char_indices() {
        if c != '#' {
            continue;
        }
        let after_space = line[..i].chars().next_back().is_none_or(char::is_whitespace);
        if after_space || !line[i..].contains('@') {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_parsing_with_comments() {
        let text = "# opt-outs exported 2024-05-01\n\
                    \n\
                    Ada@Example.com   # asked by mail\n\
                    bob@example.com#trailing\n\
                    odd#local@example.com\n\
                    030 1234567\n\
                    +1 650 253 0000 # US\n\
                    \u{20}  # indented comment\n\
                    12\n";
        let s = Suppressions::parse(text, Some(Id::DE));
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert!(s.contains_email("ada@example.com"));
        assert!(s.contains_email("ADA@EXAMPLE.COM"));
        assert!(s.contains_email("bob@example.com"));
        assert!(s.contains_email("odd#local@example.com"));
        assert!(!s.contains_email("odd"));
        assert!(s.contains_phone("+49301234567"));
        assert!(s.contains_phone("+16502530000"));
        assert!(!s.contains_phone("+4915123456789"));
        assert_eq!(
            s.rejected(),
            [RowError {
                line: 9,
                reason: "not a valid phone number for region DE".into()
            }]
        );

        // Without a region a national number cannot be understood.
        let s = Suppressions::parse("030 1234567\n+49 30 1234567\n", None);
        assert_eq!(s.len(), 1);
        assert_eq!(s.rejected()[0].line, 1);
        assert_eq!(
            s.rejected()[0].reason,
            "no country code and no default_region configured"
        );
    }

    #[test]
    fn suppression_insert_and_empty() {
        let mut s = Suppressions::default();
        assert!(s.is_empty());
        s.insert_email(" X@Example.com ");
        s.insert_email("x@example.com");
        s.insert_phone("+49301234567");
        assert_eq!(s.len(), 2);
        assert!(s.contains_email("x@EXAMPLE.com"));
        assert!(s.contains_phone("+49301234567"));
        assert!(Suppressions::parse("# nothing\n\n", None).is_empty());
    }

    #[test]
    fn suppression_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optouts.txt");
        let e = Suppressions::load(&path, None).unwrap_err();
        assert!(e.to_string().starts_with(&path.display().to_string()), "{e}");
        assert!(e.to_string().contains("optouts.txt"));

        std::fs::write(&path, b"\xEF\xBB\xBFa@example.com\r\n+49 30 1234567\r\n").unwrap();
        let s = Suppressions::load(&path, None).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.contains_email("a@example.com"), "BOM stripped, CRLF handled");
        assert!(s.contains_phone("+49301234567"));
    }

    #[test]
    fn the_state_list_grows_and_is_read_with_the_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        add_to_state(&state, "+4915123456789").unwrap();
        add_to_state(&state, "ben@example.com").unwrap();
        let list = dir.path().join("optouts.txt");
        std::fs::write(&list, "ada@example.com\n").unwrap();
        let s = load_all(Some(&list), &state, None).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.contains_phone("+4915123456789") && s.contains_email("ben@example.com"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state_file(&state)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the list names people: private");
        assert!(load_all(None, dir.path(), None).unwrap().is_empty());
    }
}
