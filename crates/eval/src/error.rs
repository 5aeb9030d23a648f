//! The one error type of `unseen-eval`.
//!
//! Every function that can meet bad input (empty or non-finite scores, logits whose length
//! does not match the class count, an unknown detector name, …) returns [`Result`] with an
//! [`EvalError`] whose message names the input at fault, so a caller can add only the
//! context it knows (the file or dataset) and pass it on.

use std::fmt;
use std::path::PathBuf;

/// Which of the two score sets of an OOD evaluation an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreSet {
    /// The in-distribution (ID) test scores.
    Id,
    /// The out-of-distribution (OOD) test scores.
    Ood,
}

impl fmt::Display for ScoreSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScoreSet::Id => "ID",
            ScoreSet::Ood => "OOD",
        })
    }
}

/// Errors returned by `unseen-eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// One of the two score sets is empty; every OOD metric needs both.
    #[error("the {set} score set is empty: OOD metrics need at least one ID and one OOD score")]
    EmptyScores {
        /// The empty set.
        set: ScoreSet,
    },

    /// A score is NaN or infinite.
    #[error("{set} score at index {index} is {value}: scores must be finite")]
    NonFiniteScore {
        /// The set holding the bad score.
        set: ScoreSet,
        /// Its position in the slice that was passed in.
        index: usize,
        /// The offending value.
        value: f32,
    },

    /// The target true-positive rate of an FPR@TPR metric is outside `[0, 1]` (or NaN).
    #[error("target TPR {tpr} is invalid: it must be a number in [0, 1] (e.g. 0.95)")]
    InvalidTpr {
        /// The rate that was asked for.
        tpr: f64,
    },

    /// An input that must not be empty is empty.
    #[error("{what} is empty")]
    Empty {
        /// What was empty, e.g. `"labels"`.
        what: &'static str,
    },

    /// Two inputs that must have the same length do not.
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        /// What was compared, e.g. `"predictions vs labels"`.
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },

    /// A flat row-major buffer cannot be read as rows of the stated width.
    #[error("{what} has {len} values, which is not a whole number of rows of width {width}")]
    Shape {
        /// What the buffer holds, e.g. `"logits"` or `"features"`.
        what: &'static str,
        /// Number of values in the buffer.
        len: usize,
        /// The row width it was said to have (classes or feature dimension).
        width: usize,
    },

    /// A logit or feature value is NaN or infinite.
    #[error("{what} at row {row}, column {column} is {value}: values must be finite")]
    NonFiniteValue {
        /// What the buffer holds, e.g. `"logits"`.
        what: &'static str,
        /// Row (sample) index.
        row: usize,
        /// Column (class or feature) index.
        column: usize,
        /// The offending value.
        value: f32,
    },

    /// [`crate::detectors::detector_from_name`] got a name it does not know.
    #[error("unknown detector `{name}`; known detectors: {known}")]
    UnknownDetector {
        /// The name that was asked for.
        name: String,
        /// The accepted names, with their parameters.
        known: String,
    },

    /// A detector parameter is unknown, malformed or out of range.
    #[error("detector `{detector}`: {message}")]
    InvalidDetectorParameter {
        /// The detector spec as written, e.g. `"energy:T=-1"`.
        detector: String,
        /// What is wrong with it and what is accepted.
        message: String,
    },

    /// A detector that needs penultimate features was called without them.
    #[error("detector `{detector}` needs penultimate features, but none were given")]
    MissingFeatures {
        /// The detector's name.
        detector: String,
    },

    /// A detector that needs a fit on the ID training set was used before
    /// [`crate::detectors::Detector::fit`].
    #[error("detector `{detector}` has not been fitted: call `fit` on the ID training set first")]
    NotFitted {
        /// The detector's name.
        detector: String,
    },

    /// A detector needs an input the caller cannot give: the network's linear head, the
    /// training labels or logits, or enough feature dimensions.
    #[error("detector `{detector}` cannot run: {reason}")]
    Unsupported {
        /// The detector's name.
        detector: String,
        /// Why, e.g. "it needs the network's linear head and this network has none".
        reason: String,
    },

    /// A class of the ID training set has no sample, so a per-class statistic is undefined.
    #[error("detector `{detector}`: ID class {class} has no training sample")]
    EmptyClass {
        /// The detector's name.
        detector: String,
        /// The class index.
        class: usize,
    },

    /// A linear-algebra step failed (a decomposition that did not converge).
    #[error("detector `{detector}`: {message}")]
    Numerical {
        /// The detector's name.
        detector: String,
        /// What failed.
        message: String,
    },

    /// An OOD group name is neither `near` nor `far`.
    #[error("unknown OOD group `{name}`; expected `near` or `far`")]
    UnknownGroup {
        /// The name that was given.
        name: String,
    },

    /// A GCD sample is marked old in one place and new in another although it has the same
    /// class; old/new is a property of the class (see [`crate::gcd::gcd_accuracy_v2`]).
    #[error(
        "class {class} has samples marked old and samples marked new; \
         the old/new mask must be the same for every sample of a class"
    )]
    MixedOldNew {
        /// The class whose samples disagree.
        class: usize,
    },

    /// A clustering asks for fewer clusters than there are labelled classes; semi-supervised
    /// k-means gives every labelled class a cluster of its own.
    #[error(
        "k = {k} is smaller than the number of labelled classes ({labelled_classes}): \
         every labelled class needs its own cluster"
    )]
    TooFewClusters {
        /// The number of clusters asked for.
        k: usize,
        /// The number of distinct labelled classes.
        labelled_classes: usize,
    },

    /// k-means++ needs one unlabelled point for every centre that is not a labelled-class
    /// mean, and there are fewer.
    #[error(
        "{needed} centres must be seeded from unlabelled points, \
         but only {available} points are unlabelled"
    )]
    TooFewPoints {
        /// Centres to seed (`k` minus the number of labelled classes).
        needed: usize,
        /// Unlabelled points available.
        available: usize,
    },

    /// A clustering or search setting is out of range.
    #[error("invalid {what}: {message}")]
    InvalidConfig {
        /// The setting, e.g. `"k-means n_init"`.
        what: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A [`crate::kmeans::RandomSource`] returned a value outside `[0, 1)`.
    #[error("random source returned {value}: uniform draws must lie in [0, 1)")]
    InvalidRandom {
        /// The value it returned.
        value: f64,
    },

    /// The scores of one named OOD set, among several given together (as to
    /// [`crate::plots::score_histogram`]), are invalid; `error` says how.
    #[error("OOD set `{name}`: {error}")]
    InOodSet {
        /// The OOD set's name, as the caller gave it.
        name: String,
        /// What is wrong with its scores ([`EvalError::EmptyScores`] or
        /// [`EvalError::NonFiniteScore`]).
        error: Box<EvalError>,
    },

    /// The plotting library failed to draw a plot (a bug or a limit of the library, not
    /// bad input).
    #[error("could not draw plot {}: {message}", path.display())]
    Plot {
        /// The file the plot was meant for.
        path: PathBuf,
        /// The library's error.
        message: String,
    },

    /// Writing a plot file, or creating its folder, failed.
    #[error("could not write {}: {source}", path.display())]
    PlotWrite {
        /// The file or folder that could not be written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// Converting a report to JSON failed.
    #[error("could not serialize the report to JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `Result` with [`EvalError`].
pub type Result<T> = std::result::Result<T, EvalError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_input_at_fault() {
        let e = EvalError::NonFiniteScore {
            set: ScoreSet::Ood,
            index: 7,
            value: f32::NAN,
        };
        assert_eq!(
            e.to_string(),
            "OOD score at index 7 is NaN: scores must be finite"
        );
        let e = EvalError::EmptyScores { set: ScoreSet::Id };
        assert!(e.to_string().starts_with("the ID score set is empty"));
    }
}
