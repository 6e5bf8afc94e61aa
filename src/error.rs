//! Errors that reach the user, and the exit codes of the contract.

use std::fmt;

/// Exit codes: 0 all sent (or nothing to do), 1 runtime error (resumable), 2 invalid input or
/// config (nothing sent), 3 finished but some deliveries failed or were skipped for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Runtime = 1,
    Invalid = 2,
    Partial = 3,
}

/// A place in a user's file: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Byte offset, for looking further into the same file.
    pub offset: usize,
}

impl SourceLocation {
    /// 1-based line and column (in characters) of byte `offset` in `source`.
    pub fn from_offset(file: &str, source: &str, offset: usize) -> SourceLocation {
        let offset = offset.min(source.len());
        let before = &source[..source.floor_char_boundary(offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        SourceLocation {
            file: file.to_string(),
            line,
            column,
            offset,
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// The error type of commands. `Invalid` means nothing was sent (exit 2); `Runtime` means the
/// run may be partly done and is resumable (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{}", fmt_invalid(.location, .message))]
    Invalid {
        location: Option<SourceLocation>,
        message: String,
    },
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

fn fmt_invalid(location: &Option<SourceLocation>, message: &str) -> String {
    let message = crate::secrets::redact(message);
    match location {
        Some(l) => format!("{l}: {message}"),
        None => message.into_owned(),
    }
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> AppError {
        AppError::Invalid {
            location: None,
            message: message.into(),
        }
    }

    pub fn invalid_at(location: Option<SourceLocation>, message: impl Into<String>) -> AppError {
        AppError::Invalid {
            location,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> AppError {
        AppError::Runtime(anyhow::anyhow!(message.into()))
    }

    pub fn exit(&self) -> Exit {
        match self {
            AppError::Invalid { .. } => Exit::Invalid,
            AppError::Runtime(_) => Exit::Runtime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let src = "a = 1\nbé = 2\n";
        let l = SourceLocation::from_offset("f.toml", src, src.find('=').unwrap());
        assert_eq!((l.line, l.column), (1, 3));
        let l = SourceLocation::from_offset("f.toml", src, src.rfind('=').unwrap());
        assert_eq!((l.line, l.column, l.to_string().as_str()), (2, 4, "f.toml:2:4"));
    }
}
