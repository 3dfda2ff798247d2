//! What can go wrong in a backup or restore, classified for the control API and the CLI.

use std::io;

use rusqlite::ErrorCode;

use crate::actions::{open_kind, ErrorKind};
use crate::sqlite::connection::OpenError;

/// Why a backup or restore did not happen; [`BackupError::kind`] classifies it.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("invalid label {0:?}: expected 1 to 64 characters from A-Z a-z 0-9 _ -")]
    InvalidLabel(String),
    #[error("invalid database name {0:?} for a backup file name")]
    InvalidDatabaseName(String),
    #[error("cannot open database: {0}")]
    Open(OpenError),
    #[error("refused: the database fails {check}: {detail}")]
    CorruptSource { check: &'static str, detail: String },
    #[error("backup {file} failed verification: {detail}")]
    VerificationFailed { file: String, detail: String },
    #[error("database locked by another connection past the busy timeout")]
    Locked,
    #[error("database changed during the backup {0} times; retry later, or use WAL mode")]
    SourceKeepsChanging(u32),
    #[error("a backup named {0} already exists")]
    NameTaken(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A file operation in the backup directory failed (the message says which).
    #[error("{0}")]
    Files(#[from] io::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl BackupError {
    /// The class of failure, which the control API and the CLI map to a status or exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BackupError::InvalidLabel(_) | BackupError::InvalidDatabaseName(_) => {
                ErrorKind::InvalidInput
            }
            BackupError::Open(e) => open_kind(e),
            BackupError::CorruptSource { .. } | BackupError::VerificationFailed { .. } => {
                ErrorKind::Refused
            }
            BackupError::Locked | BackupError::SourceKeepsChanging(_) => ErrorKind::Locked,
            BackupError::NameTaken(_) => ErrorKind::Busy,
            BackupError::Cancelled => ErrorKind::Cancelled,
            BackupError::Io { .. } | BackupError::Files(_) | BackupError::Sqlite(_) => {
                ErrorKind::Internal
            }
        }
    }
}

/// An I/O error with what was being done, as a [`BackupError`].
pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let context = context.into();
    move |source| BackupError::Io { context, source }
}

/// Classifies a SQLite error met while copying or checking.
pub(crate) fn sqlite_err(e: rusqlite::Error) -> BackupError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => BackupError::Locked,
        Some(ErrorCode::OperationInterrupted) => BackupError::Cancelled,
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
            BackupError::CorruptSource {
                check: "reading",
                detail: e.to_string(),
            }
        }
        _ => BackupError::Sqlite(e),
    }
}
