//! Errors of this crate.

/// Errors raised when building or loading a backbone.
#[derive(Debug, thiserror::Error)]
pub enum BackboneError {
    /// The registry has no network of that name.
    #[error("unknown backbone `{name}`; known backbones: {known}")]
    UnknownName {
        /// The name asked for.
        name: String,
        /// The names the registry knows, comma separated.
        known: String,
    },
    /// A parameter of the spec is out of range.
    #[error("invalid backbone spec: {0}")]
    InvalidSpec(String),
}
