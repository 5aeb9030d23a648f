//! Weighted sampling with replacement: the index order of an epoch, as PyTorch's
//! `WeightedRandomSampler(weights, num_samples)` (`replacement=True`) produces it.
//!
//! GCD and SimGCD balance labelled and unlabelled images this way
//! (`sgvaze/generalized-category-discovery`,
//! `methods/contrastive_training/contrastive_training.py`; `CVMI-Lab/SimGCD`, `train.py`):
//!
//! ```python
//! sample_weights = [1 if i < label_len else label_len / unlabelled_len
//!                   for i in range(len(train_dataset))]
//! sampler = WeightedRandomSampler(sample_weights, num_samples=len(train_dataset))
//! DataLoader(train_dataset, batch_size=128, sampler=sampler, drop_last=True)
//! ```
//!
//! over the `MergedDataset` (labelled images first). The labelled images weigh `L` in total
//! and the unlabelled ones `U * L / U = L`, so each draw is labelled with probability 1/2,
//! and an epoch draws `L + U` indices with replacement:
//! [`WeightedSampler::gcd_balanced`]. Use the order with
//! [`Sampling::Weighted`](crate::multiview::Sampling) in a
//! [`MultiViewLoader`](crate::multiview::MultiViewLoader).
//!
//! Each draw takes `u = next_f64() * total` and returns the first index whose cumulative
//! weight exceeds `u` (inverse-CDF sampling; zero weights are never drawn). The order of
//! epoch `e` comes from its own generator derived from `(seed, e)`, so it does not depend on
//! earlier epochs.

use crate::error::{DataError, Result};
use crate::rng::Rng;

/// `WeightedRandomSampler(weights, num_samples, replacement=True)` with a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedSampler {
    cumulative: Vec<f64>,
    num_samples: usize,
    seed: u64,
}

impl WeightedSampler {
    /// A sampler drawing `num_samples` indices per epoch, index `i` with probability
    /// proportional to `weights[i]`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when `weights` is empty, a weight is negative or not finite
    /// (naming its index and value), all weights are zero, or `num_samples` is 0.
    pub fn new(weights: &[f64], num_samples: usize, seed: u64) -> Result<Self> {
        if weights.is_empty() {
            return Err(DataError::Invalid("weighted sampler: no weight".into()));
        }
        if num_samples == 0 {
            return Err(DataError::Invalid(
                "weighted sampler: num_samples = 0".into(),
            ));
        }
        let mut cumulative = Vec::with_capacity(weights.len());
        let mut total = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            if !(w.is_finite() && w >= 0.0) {
                return Err(DataError::Invalid(format!(
                    "weighted sampler: weight {i} is {w} (must be finite and >= 0)"
                )));
            }
            total += w;
            cumulative.push(total);
        }
        if total <= 0.0 {
            return Err(DataError::Invalid(
                "weighted sampler: every weight is zero".into(),
            ));
        }
        Ok(Self {
            cumulative,
            num_samples,
            seed,
        })
    }

    /// GCD / SimGCD's balanced sampler over a merged set of `labelled` then `unlabelled`
    /// images: weight 1 for a labelled image, `labelled / unlabelled` for an unlabelled one,
    /// `labelled + unlabelled` draws per epoch.
    ///
    /// # Errors
    /// When either count is 0.
    pub fn gcd_balanced(labelled: usize, unlabelled: usize, seed: u64) -> Result<Self> {
        if labelled == 0 || unlabelled == 0 {
            return Err(DataError::Invalid(format!(
                "balanced sampler: needs labelled and unlabelled images (got {labelled} and \
                 {unlabelled})"
            )));
        }
        let w_u = labelled as f64 / unlabelled as f64;
        let weights: Vec<f64> = (0..labelled + unlabelled)
            .map(|i| if i < labelled { 1.0 } else { w_u })
            .collect();
        Self::new(&weights, labelled + unlabelled, seed)
    }

    /// Number of indices (the size of the sampled set).
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Always false: a sampler has at least one index.
    pub fn is_empty(&self) -> bool {
        self.cumulative.is_empty()
    }

    /// Indices drawn per epoch.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// The probability of drawing index `i`.
    pub fn probability(&self, i: usize) -> f64 {
        let total = self.cumulative[self.cumulative.len() - 1];
        let prev = if i == 0 { 0.0 } else { self.cumulative[i - 1] };
        (self.cumulative[i] - prev) / total
    }

    /// The `num_samples` indices of epoch `epoch`, drawn with replacement; a pure function
    /// of `(seed, epoch)`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut rng = Rng::derive(self.seed, "weighted-sampler", &[epoch as u64]);
        let total = self.cumulative[self.cumulative.len() - 1];
        let last = self.cumulative.len() - 1;
        (0..self.num_samples)
            .map(|_| {
                let u = rng.next_f64() * total;
                self.cumulative.partition_point(|&c| c <= u).min(last)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcd_balanced_draws_half_labelled() {
        // 100 labelled, 900 unlabelled: each draw is labelled with probability 1/2; each
        // labelled index has probability 1/200, each unlabelled 1/1800.
        let s = WeightedSampler::gcd_balanced(100, 900, 3).unwrap();
        assert_eq!((s.len(), s.num_samples()), (1000, 1000));
        assert!((s.probability(0) - 1.0 / 200.0).abs() < 1e-12);
        assert!((s.probability(500) - 1.0 / 1800.0).abs() < 1e-12);
        let mut labelled = 0usize;
        let mut hits = vec![0usize; 1000];
        for e in 0..200 {
            let o = s.order(e);
            assert_eq!(o.len(), 1000);
            labelled += o.iter().filter(|&&i| i < 100).count();
            for i in o {
                hits[i] += 1;
            }
        }
        let p = labelled as f64 / 200_000.0;
        assert!((p - 0.5).abs() < 0.005, "{p}");
        // Labelled index 7 expected 200000/200 = 1000 times.
        assert!((880..1120).contains(&hits[7]), "{}", hits[7]);
        // With replacement: an epoch repeats indices.
        let mut o = s.order(0);
        o.sort_unstable();
        o.dedup();
        assert!(o.len() < 1000);
    }

    #[test]
    fn orders_are_per_epoch_and_seeded() {
        let s = WeightedSampler::gcd_balanced(5, 20, 1).unwrap();
        assert_eq!(s.order(3), s.clone().order(3));
        assert_ne!(s.order(0), s.order(1));
        assert_ne!(
            s.order(0),
            WeightedSampler::gcd_balanced(5, 20, 2).unwrap().order(0)
        );
    }

    #[test]
    fn zero_weights_are_never_drawn_and_errors_name_the_value() {
        let s = WeightedSampler::new(&[0.0, 2.0, 0.0, 1.0], 3000, 0).unwrap();
        let o = s.order(0);
        assert!(o.iter().all(|&i| i == 1 || i == 3));
        let ones = o.iter().filter(|&&i| i == 1).count();
        assert!((1900..2100).contains(&ones), "{ones}");
        let e = WeightedSampler::new(&[1.0, -1.0], 1, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("weight 1 is -1"), "{e}");
        assert!(WeightedSampler::new(&[f64::NAN], 1, 0).is_err());
        assert!(WeightedSampler::new(&[0.0, 0.0], 1, 0)
            .unwrap_err()
            .to_string()
            .contains("zero"));
        assert!(WeightedSampler::new(&[], 1, 0).is_err());
        assert!(WeightedSampler::new(&[1.0], 0, 0).is_err());
        let e = WeightedSampler::gcd_balanced(0, 5, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("got 0 and 5"), "{e}");
    }
}
