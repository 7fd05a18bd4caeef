//! The one error type of the crate.

use std::io;

/// Why a dataset operation failed. Every variant but [`DatasetError::Io`] is the caller's (or the
/// query author's) to fix; the messages are written to be shown to them.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The upload (or the dataset id) is not acceptable: bad CSV or JSON, empty or duplicate
    /// column names, too many columns, a row of the wrong width.
    #[error("invalid dataset: {0}")]
    Invalid(String),
    /// No dataset with this id exists.
    #[error("dataset not found")]
    NotFound,
    /// The query is not valid SQL or fails while running (SQLite's message), or a filter names an
    /// unknown column or carries a value of the wrong type.
    #[error("query failed: {0}")]
    Query(String),
    /// The query tries something other than reading the dataset: a write, another table, `ATTACH`,
    /// `PRAGMA`, a second statement, a function that is not allowed.
    #[error("query not allowed: {0}")]
    Forbidden(String),
    /// The query ran longer than its time limit and was interrupted.
    #[error("query timed out")]
    Timeout,
    /// The upload, or the result of a query or export, is over its size cap.
    #[error("dataset or result too large")]
    TooLarge,
    /// Reading or writing the dataset files failed.
    #[error("dataset storage failed: {0}")]
    Io(#[from] io::Error),
}

impl DatasetError {
    /// An internal failure of the storage layer (not the user's SQL), reported as [`Io`](Self::Io).
    pub(crate) fn storage(err: impl std::fmt::Display) -> Self {
        DatasetError::Io(io::Error::other(err.to_string()))
    }
}
