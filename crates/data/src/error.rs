//! Typed errors for everything in this crate. Each variant names the file (or dataset) at
//! fault, what was expected and what was found, so a user can fix the input.

use std::path::PathBuf;

/// Errors raised while reading, splitting or downloading data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file (or folder) could not be created or written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error (`No space left on device`, ...).
        #[source]
        source: std::io::Error,
    },
    /// The file's header or size does not match its format.
    #[error("{path}: {message}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// A split or dataset description is inconsistent (unknown class, impossible fraction...).
    #[error("invalid split: {0}")]
    Split(String),
    /// A setting is out of range (the message names it).
    #[error("{0}")]
    Invalid(String),
    /// A download failed or its checksum did not match.
    #[error("download of {url} failed: {message}")]
    Download {
        /// The address fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
}

impl DataError {
    /// Convenience constructor for [`DataError::Format`].
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Convenience constructor for [`DataError::Write`].
    pub fn write(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Write {
            path: path.into(),
            source,
        }
    }

    /// Convenience constructor for [`DataError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, DataError>;
