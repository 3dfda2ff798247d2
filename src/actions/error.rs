//! The one error type of every action, and the one classification of failures that the control
//! API maps to an HTTP status and the CLI to an exit code.

use serde::Serialize;
use serde_json::Value;

use crate::sqlite::connection::OpenError;

/// Classes of failure, which the API maps to statuses and the CLI to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad input: a bad name, label or mode (400).
    InvalidInput,
    /// No such database or backup (404).
    NotFound,
    /// Another action is running on the database, or the name is taken (409).
    Busy,
    /// Refused for safety: a corrupt source, a backup failing verification, not enough disk (422).
    Refused,
    /// The database stayed locked past the busy timeout (503).
    Locked,
    /// Cancelled (shutdown); nothing was changed.
    Cancelled,
    /// Anything else (500).
    Internal,
}

impl ErrorKind {
    /// Every kind, for the tests of the mappings to statuses and exit codes.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::Busy,
        ErrorKind::Refused,
        ErrorKind::Locked,
        ErrorKind::Cancelled,
        ErrorKind::Internal,
    ];
}

/// Why an action did not do what was asked.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error}")]
pub struct ActionError {
    /// The class.
    #[serde(skip)]
    pub kind: ErrorKind,
    /// One sentence.
    pub error: String,
    /// Structured detail, when there is some (e.g. the report of a failed recovery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

impl ActionError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, error: impl Into<String>) -> Self {
        ActionError {
            kind,
            error: error.into(),
            detail: None,
        }
    }

    /// Adds structured detail.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Whether the request was refused before anything was attempted (bad input, unknown
    /// database or backup): such a request is not counted as an action.
    pub fn refused_upfront(&self) -> bool {
        matches!(self.kind, ErrorKind::InvalidInput | ErrorKind::NotFound)
    }
}

/// The kind of an open failure, the same for every action: a missing file is 404, a lock 503,
/// a file that is not a usable database (damaged, empty, a directory) 422.
pub fn open_kind(e: &OpenError) -> ErrorKind {
    match e {
        OpenError::Missing => ErrorKind::NotFound,
        OpenError::Locked => ErrorKind::Locked,
        OpenError::NotADatabase
        | OpenError::Corrupt(_)
        | OpenError::Empty
        | OpenError::Directory => ErrorKind::Refused,
        OpenError::PermissionDenied | OpenError::Other(_) => ErrorKind::Internal,
    }
}

/// Whether SQLite gave up waiting for a lock.
pub fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_open_failure_has_one_kind() {
        let cases = [
            (OpenError::Missing, ErrorKind::NotFound),
            (OpenError::Locked, ErrorKind::Locked),
            (OpenError::NotADatabase, ErrorKind::Refused),
            (OpenError::Corrupt("x".into()), ErrorKind::Refused),
            (OpenError::Empty, ErrorKind::Refused),
            (OpenError::Directory, ErrorKind::Refused),
            (OpenError::PermissionDenied, ErrorKind::Internal),
            (OpenError::Other("x".into()), ErrorKind::Internal),
        ];
        for (e, kind) in cases {
            assert_eq!(open_kind(&e), kind, "{e}");
        }
    }

    #[test]
    fn bad_input_and_unknown_names_are_refused_upfront() {
        for (kind, upfront) in [
            (ErrorKind::InvalidInput, true),
            (ErrorKind::NotFound, true),
            (ErrorKind::Busy, false),
            (ErrorKind::Refused, false),
            (ErrorKind::Locked, false),
            (ErrorKind::Cancelled, false),
            (ErrorKind::Internal, false),
        ] {
            assert_eq!(
                ActionError::new(kind, "x").refused_upfront(),
                upfront,
                "{kind:?}"
            );
        }
    }
}
