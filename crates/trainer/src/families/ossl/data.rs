//! The data of an open-set SSL run: the labelled / unlabelled split of `data.id`, the test
//! sets, the weak / strong views, and [`ViewStream`], USB's sampler as a pure function of the
//! iteration.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use unseen_data::multiview::MultiViewBatch;
use unseen_data::splits::ossl::{OsslSplit, OsslTest};
use unseen_data::transforms::ViewAugment;
use unseen_data::{ImageSet, Rng};

use super::config::{OsslSection, ViewPreset};
use crate::config::ExperimentConfig;

/// The split of an OSSL run and its test sets.
#[derive(Debug, Clone)]
pub struct OsslData {
    /// The labelled / unlabelled split of the training set.
    pub split: OsslSplit,
    /// The closed-set and full test sets.
    pub test: OsslTest,
    /// `split.labelled`, shared with the loaders.
    pub labelled: Arc<ImageSet>,
    /// `split.unlabelled`, shared with the loaders.
    pub unlabelled: Arc<ImageSet>,
    /// `test.full`, shared with the evaluation loader.
    pub full_test: Arc<ImageSet>,
}

/// Loads `data.id` (train and test splits) and splits it by `[ossl]`, seeded with
/// `cfg.seed`.
///
/// # Errors
/// Missing data, a class list naming an absent class, no unseen class, or more labels per
/// class than a seen class has images (the message names the class and both counts).
pub fn load_data(cfg: &ExperimentConfig, sec: &OsslSection) -> Result<OsslData> {
    let d = &cfg.data;
    let load = |train: bool| {
        crate::run::data::load_dataset(&d.id, train, cfg.seed, "data.id", d.preprocess_for(train))
    };
    let (train, test) = (load(true)?, load(false)?);
    if train.channels != cfg.model.in_channels {
        bail!(
            "data.id has {} channel(s) but `model.in_channels` is {}",
            train.channels,
            cfg.model.in_channels
        );
    }
    let split = match &sec.labelled_list {
        None => OsslSplit::new(&train, &sec.split_config(), cfg.seed),
        Some(list) => {
            let indices = labelled_indices(cfg, list)?;
            OsslSplit::from_labelled_indices(&train, &sec.split_config(), &indices)
        }
    }
    .context("[ossl] split")?;
    let test = split.test(&test).context("[ossl] test split")?;
    Ok(OsslData {
        labelled: Arc::new(split.labelled.clone()),
        unlabelled: Arc::new(split.unlabelled.clone()),
        full_test: Arc::new(test.full.clone()),
        split,
        test,
    })
}

/// The positions in `data.id.train_list` of the lines of `ossl.labelled_list` (both
/// relative to `data.id.path` unless absolute).
fn labelled_indices(cfg: &ExperimentConfig, list: &Path) -> Result<Vec<usize>> {
    let id = &cfg.data.id;
    let train_list = id
        .list_path(true)
        .context("`ossl.labelled_list` needs `data.id.train_list`")?;
    let labelled_list = id.resolve(list);
    let all = unseen_data::formats::read_file_list(&train_list)
        .context("[ossl] labelled_list: data.id.train_list")?;
    let labelled =
        unseen_data::formats::read_file_list(&labelled_list).context("[ossl] labelled_list")?;
    unseen_data::formats::find_entries(&all, &labelled).with_context(|| {
        format!(
            "[ossl] labelled_list {} against data.id.train_list {}",
            labelled_list.display(),
            train_list.display()
        )
    })
}

/// The weak and strong views of a run (see [`ViewPreset`]); `test_size` is the side of the
/// test images (the `imagenet` preset's crop).
pub fn views(
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    set: &ImageSet,
    test_size: usize,
) -> (ViewAugment, ViewAugment) {
    let (mean, std) = (cfg.data.augment.mean.clone(), cfg.data.augment.std.clone());
    let preset = sec
        .views
        .unwrap_or(if set.channels == 1 && set.height <= 28 {
            ViewPreset::Digits
        } else {
            ViewPreset::Usb
        });
    match preset {
        ViewPreset::Digits => (
            ViewAugment::digits_weak(mean.clone(), std.clone()),
            ViewAugment::digits_strong(mean, std),
        ),
        ViewPreset::Usb => (
            ViewAugment::usb_weak(set.height, mean.clone(), std.clone()),
            ViewAugment::usb_strong(set.height, mean, std),
        ),
        ViewPreset::Imagenet => (
            ViewAugment::imagenet_weak(test_size, mean.clone(), std.clone()),
            ViewAugment::imagenet_strong(test_size, mean, std),
        ),
    }
}

/// An endless stream of batches drawn as USB's `RandomSampler` (concatenated seeded
/// permutations of the set), each image augmented into one or more views (see the
/// [family docs](super#sampling)). Batch `t` is a pure function of `(seed, name, t)`.
#[derive(Debug, Clone)]
pub struct ViewStream {
    set: Arc<ImageSet>,
    views: Vec<ViewAugment>,
    batch_size: usize,
    seed: u64,
    name: String,
    cache: Option<(usize, Vec<usize>)>,
    /// `(height, width)` every view outputs ([`ViewAugment::output_size`]).
    out: (usize, usize),
}

impl ViewStream {
    /// A stream of `batch_size` images of `set` per batch, each with `views.len()` views.
    ///
    /// # Errors
    /// An empty set, no view, batch size 0, a view that does not fit the images, or views
    /// whose output sizes ([`ViewAugment::output_size`]) differ (a batch has one shape).
    pub fn new(
        set: Arc<ImageSet>,
        views: Vec<ViewAugment>,
        batch_size: usize,
        seed: u64,
        name: &str,
    ) -> Result<Self> {
        if set.is_empty() {
            bail!("{name} stream: the image set is empty");
        }
        if views.is_empty() || batch_size == 0 {
            bail!("{name} stream: needs at least one view and a batch size of at least 1");
        }
        let out = unseen_data::transforms::shared_output_size(
            &views,
            set.channels,
            set.height,
            set.width,
        )
        .with_context(|| format!("{name} stream"))?;
        Ok(Self {
            set,
            views,
            batch_size,
            seed,
            name: name.to_string(),
            cache: None,
            out,
        })
    }

    /// The images this stream reads.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// The set's indices of batch `t`: positions `t·b .. (t + 1)·b` of the concatenated
    /// permutations.
    pub fn indices(&mut self, t: usize) -> Vec<usize> {
        let n = self.set.len();
        let b = self.batch_size;
        (t * b..(t + 1) * b)
            .map(|p| {
                let m = p / n;
                if self.cache.as_ref().map(|c| c.0) != Some(m) {
                    let perm = Rng::derive(self.seed, &self.name, &[m as u64]).permutation(n);
                    self.cache = Some((m, perm));
                }
                self.cache.as_ref().expect("filled above").1[p % n]
            })
            .collect()
    }

    /// Batch `t`, of shape `[batch_size, c, oh, ow]` with `(oh, ow)` the views' output size.
    pub fn batch(&mut self, t: usize) -> MultiViewBatch {
        let indices = self.indices(t);
        let stream = format!("{}-augment", self.name);
        let seed = self.seed;
        unseen_data::multiview::augment_views(&self.set, indices, &self.views, self.out, |k, v| {
            Rng::derive(seed, &stream, &[t as u64, k as u64, v as u64])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Arc<ImageSet> {
        let pixels = (0..n * 16).map(|i| (i * 37 % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 2) as u32).collect();
        Arc::new(ImageSet::new(pixels, labels, 1, 4, 4, vec!["a".into(), "b".into()]).unwrap())
    }

    #[test]
    fn view_stream_concatenates_permutations_and_is_pure() {
        let weak = ViewAugment::digits_weak(vec![0.5], vec![0.5]);
        let mut weak = weak;
        weak.crop_padding = 1;
        let mut s = ViewStream::new(toy(5), vec![weak.clone(), weak.clone()], 3, 7, "t").unwrap();
        // 10 positions = two permutations of 0..5.
        let idx: Vec<usize> = (0..4).flat_map(|t| s.indices(t)).collect();
        for chunk in idx[..10].chunks(5) {
            let mut c = chunk.to_vec();
            c.sort_unstable();
            assert_eq!(c, [0, 1, 2, 3, 4]);
        }
        // A batch larger than the set still fills.
        let mut big = ViewStream::new(toy(2), vec![weak.clone()], 5, 7, "t").unwrap();
        assert_eq!(big.batch(0).len(), 5);
        // Batch t depends only on (seed, name, t), not on what was drawn before.
        let b2 = s.batch(2);
        let mut fresh = ViewStream::new(toy(5), vec![weak.clone(), weak], 3, 7, "t").unwrap();
        assert_eq!(fresh.batch(2), b2);
        assert_eq!(b2.num_views(), 2);
        assert_eq!(
            b2.labels,
            b2.indices
                .iter()
                .map(|&i| (i % 2) as u32)
                .collect::<Vec<_>>()
        );
    }
}
