//! Batches holding several augmented views of the same images: the two contrastive views
//! of GCD / SimGCD and the weak / strong views of FixMatch-style methods (FixMatch,
//! IOMatch).
//!
//! - GCD / SimGCD: `ContrastiveLearningViewGenerator(base_transform, n_views=2)` returns
//!   `[base_transform(x) for _ in range(2)]`, and the training step does
//!   `torch.cat(images, dim=0)`: [`MultiViewLoader::contrastive`] +
//!   [`MultiViewBatch::views_tensor`]. Their loader samples the merged labelled + unlabelled
//!   set with a `WeightedRandomSampler` and `drop_last=True`:
//!   [`Sampling::Weighted`] with [`WeightedSampler::gcd_balanced`].
//! - USB / IOMatch: the unlabelled dataset returns `x_ulb_w = weak(x)` and
//!   `x_ulb_s = strong(x)` (`BasicDataset.__getitem__`, `semilearn/datasets/cv_datasets/
//!   datasetbase.py`): [`MultiViewLoader::weak_strong`]. Labelled batches use one weak
//!   view (a plain [`Loader`](crate::loader::Loader) or a one-view `MultiViewLoader`).
//!
//! # Determinism
//! As the [`Loader`](crate::loader::Loader): the order of epoch `e` is a pure function of
//! `(seed, e)`, and view `v` of the sample at position `p` of epoch `e` is augmented with
//! its own generator derived from `(seed, e, p, v)`. Views are therefore independent of
//! each other, of the thread count (1 or 64 threads give the same bytes) and of earlier
//! epochs; [`MultiViewLoader::epoch_from`] resumes mid-epoch.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

use crate::dataset::ImageSet;
use crate::epoch::{self, Chunk, EpochPlan};
use crate::error::{DataError, Result};
use crate::rng::Rng;
use crate::sampler::WeightedSampler;
use crate::transforms::{shared_output_size, ViewAugment};

/// How a [`MultiViewLoader`] orders an epoch.
#[derive(Debug, Clone, PartialEq)]
pub enum Sampling {
    /// The set in its order, every image once.
    InOrder,
    /// A fresh seeded permutation every epoch, every image once.
    Shuffle,
    /// Indices drawn with replacement by a [`WeightedSampler`] over the set (its length
    /// must be the set's); the epoch has `num_samples` draws.
    Weighted(WeightedSampler),
}

/// Several views of one batch of images, normalized into `f32`, channel-first.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiViewBatch {
    /// `views[v]` holds view `v` of every image: `n * c * h * w` values, image after image
    /// (`h x w` is the views' output size, [`ViewAugment::output_size`]).
    pub views: Vec<Vec<f32>>,
    /// The label of each image.
    pub labels: Vec<u32>,
    /// The index of each image in the loader's [`ImageSet`].
    pub indices: Vec<usize>,
    /// `[n, channels, height, width]` of each view (the views' output size, which may
    /// differ from the set's image size when a view crops).
    pub shape: [usize; 4],
}

impl MultiViewBatch {
    /// Number of images (per view).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of views.
    pub fn num_views(&self) -> usize {
        self.views.len()
    }

    /// The `f32` values of view `v` of image `k`.
    pub fn image(&self, v: usize, k: usize) -> &[f32] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.views[v][k * per..(k + 1) * per]
    }

    /// View `v` as a `[n, c, h, w]` tensor.
    pub fn view_tensor<B: Backend>(&self, v: usize, device: &B::Device) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(self.views[v].clone(), self.shape), device)
    }

    /// Every view stacked along the batch axis, view 0 first: `[V * n, c, h, w]` (GCD's
    /// `torch.cat(images, dim=0)`; row `v * n + k` is view `v` of image `k`).
    pub fn views_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        let [n, c, h, w] = self.shape;
        let data: Vec<f32> = self.views.concat();
        Tensor::from_data(
            TensorData::new(data, [self.views.len() * n, c, h, w]),
            device,
        )
    }

    /// The labels as a `[n]` integer tensor.
    pub fn labels_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 1, Int> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_data(TensorData::new(labels, [self.len()]), device)
    }
}

/// Batches of several independently augmented views of the same images.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use unseen_data::{ImageSet, multiview::{MultiViewLoader, Sampling}};
/// # use unseen_data::transforms::ViewAugment;
/// # fn f(unlabelled: ImageSet) -> unseen_data::error::Result<()> {
/// let (m, s) = (vec![0.5; 3], vec![0.25; 3]);
/// let loader = MultiViewLoader::weak_strong(
///     Arc::new(unlabelled),
///     ViewAugment::usb_weak(32, m.clone(), s.clone()),
///     ViewAugment::usb_strong(32, m, s),
///     448, Sampling::Shuffle, true, 0,
/// )?;
/// for batch in loader.epoch(0) {
///     let (weak, strong) = (&batch.views[0], &batch.views[1]);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MultiViewLoader {
    set: Arc<ImageSet>,
    views: Vec<ViewAugment>,
    batch_size: usize,
    sampling: Sampling,
    drop_last: bool,
    seed: u64,
}

impl MultiViewLoader {
    /// A loader over `set` producing `views.len()` views of every image, in batches of
    /// `batch_size`, ordered by `sampling`; `drop_last` drops a final incomplete batch.
    ///
    /// # Errors
    /// [`DataError::Split`] for an empty set, no view, batch size 0, a weighted sampler whose
    /// length is not the set's, or `drop_last` leaving no batch; [`DataError::Invalid`] when
    /// a view does not fit the images ([`ViewAugment::validate`]) or the views do not share
    /// one output size ([`ViewAugment::output_size`]; a batch has one shape).
    pub fn new(
        set: Arc<ImageSet>,
        views: Vec<ViewAugment>,
        batch_size: usize,
        sampling: Sampling,
        drop_last: bool,
        seed: u64,
    ) -> Result<Self> {
        if set.is_empty() {
            return Err(DataError::Split(
                "multi-view loader: the image set is empty".into(),
            ));
        }
        if views.is_empty() {
            return Err(DataError::Split("multi-view loader: no view".into()));
        }
        if batch_size == 0 {
            return Err(DataError::Split("multi-view loader: batch size 0".into()));
        }
        shared_output_size(&views, set.channels, set.height, set.width)
            .map_err(|e| DataError::Invalid(format!("multi-view loader, {e}")))?;
        if let Sampling::Weighted(s) = &sampling {
            if s.len() != set.len() {
                return Err(DataError::Split(format!(
                    "multi-view loader: the weighted sampler covers {} indices, the set has {} \
                     images",
                    s.len(),
                    set.len()
                )));
            }
        }
        let loader = Self {
            set,
            views,
            batch_size,
            sampling,
            drop_last,
            seed,
        };
        if drop_last && loader.epoch_len() < batch_size {
            return Err(DataError::Split(format!(
                "multi-view loader: batch size {batch_size} with drop_last leaves no batch from \
                 {} samples",
                loader.epoch_len()
            )));
        }
        Ok(loader)
    }

    /// `n_views` independent draws of the same pipeline per image (GCD / SimGCD: 2).
    pub fn contrastive(
        set: Arc<ImageSet>,
        view: ViewAugment,
        n_views: usize,
        batch_size: usize,
        sampling: Sampling,
        drop_last: bool,
        seed: u64,
    ) -> Result<Self> {
        Self::new(
            set,
            vec![view; n_views],
            batch_size,
            sampling,
            drop_last,
            seed,
        )
    }

    /// A weak view (view 0) and a strong view (view 1) of every image (FixMatch, IOMatch).
    pub fn weak_strong(
        set: Arc<ImageSet>,
        weak: ViewAugment,
        strong: ViewAugment,
        batch_size: usize,
        sampling: Sampling,
        drop_last: bool,
        seed: u64,
    ) -> Result<Self> {
        Self::new(
            set,
            vec![weak, strong],
            batch_size,
            sampling,
            drop_last,
            seed,
        )
    }

    /// The images this loader reads.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// The view pipelines.
    pub fn views(&self) -> &[ViewAugment] {
        &self.views
    }

    /// `(height, width)` of every view of a batch (the views share it).
    pub fn output_size(&self) -> (usize, usize) {
        self.views[0].output_size(self.set.height, self.set.width)
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Samples per epoch: the set's size, or the weighted sampler's `num_samples`.
    pub fn epoch_len(&self) -> usize {
        match &self.sampling {
            Sampling::Weighted(s) => s.num_samples(),
            _ => self.set.len(),
        }
    }

    /// Number of batches each epoch yields.
    pub fn batches_per_epoch(&self) -> usize {
        epoch::batches_per_epoch(self.epoch_len(), self.batch_size, self.drop_last)
    }

    /// The indices epoch `epoch` visits, in order; a pure function of `(seed, epoch)`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        match &self.sampling {
            Sampling::InOrder => (0..self.set.len()).collect(),
            Sampling::Shuffle => {
                Rng::derive(self.seed, "multiview", &[epoch as u64]).permutation(self.set.len())
            }
            Sampling::Weighted(s) => s.order(epoch),
        }
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: usize) -> MultiViewEpochIter {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `first_batch` on (for resuming mid-epoch).
    pub fn epoch_from(&self, epoch: usize, first_batch: usize) -> MultiViewEpochIter {
        let order = self.order(epoch);
        MultiViewEpochIter {
            loader: self.clone(),
            plan: EpochPlan::new(epoch, order, self.batch_size, self.drop_last, first_batch),
        }
    }

    /// The batch of `chunk` of epoch `epoch`: view `v` of the image at position `p` of the
    /// epoch is augmented with the generator of `(seed, "multiview-augment", epoch, p, v)`.
    fn build(&self, epoch: usize, chunk: Chunk) -> MultiViewBatch {
        let (seed, e, start) = (self.seed, epoch as u64, chunk.start);
        augment_views(
            &self.set,
            chunk.indices,
            &self.views,
            self.output_size(),
            |k, v| {
                Rng::derive(
                    seed,
                    "multiview-augment",
                    &[e, (start + k) as u64, v as u64],
                )
            },
        )
    }
}

/// The batch of the images of `set` at `indices`, each augmented by every one of `views`
/// into `out = (height, width)` (their shared output size), in parallel: view `v` of the
/// `k`-th image draws from `rng(k, v)`, so the batch does not depend on the thread count.
pub fn augment_views(
    set: &ImageSet,
    indices: Vec<usize>,
    views: &[ViewAugment],
    out: (usize, usize),
    rng: impl Fn(usize, usize) -> Rng + Sync,
) -> MultiViewBatch {
    let (c, h, w) = (set.channels, set.height, set.width);
    let per = c * out.0 * out.1;
    let views = views
        .iter()
        .enumerate()
        .map(|(v, view)| {
            let mut buf = vec![0f32; indices.len() * per];
            buf.par_chunks_mut(per)
                .zip(indices.par_iter())
                .enumerate()
                .for_each(|(k, (dst, &i))| {
                    view.apply(set.image(i), c, h, w, &mut rng(k, v), dst);
                });
            buf
        })
        .collect();
    MultiViewBatch {
        views,
        labels: indices.iter().map(|&i| set.labels[i]).collect(),
        shape: [indices.len(), c, out.0, out.1],
        indices,
    }
}

/// The batches of one epoch of a [`MultiViewLoader`] (built on demand, in parallel within a
/// batch).
#[derive(Debug, Clone)]
pub struct MultiViewEpochIter {
    loader: MultiViewLoader,
    plan: EpochPlan,
}

impl MultiViewEpochIter {
    /// The epoch being iterated.
    pub fn epoch(&self) -> usize {
        self.plan.epoch()
    }

    /// The index within the epoch of the batch the next call to `next` returns.
    pub fn next_batch_index(&self) -> usize {
        self.plan.next_batch_index()
    }
}

impl Iterator for MultiViewEpochIter {
    type Item = MultiViewBatch;

    fn next(&mut self) -> Option<MultiViewBatch> {
        let chunk = self.plan.next()?;
        Some(self.loader.build(self.plan.epoch(), chunk))
    }

    fn nth(&mut self, n: usize) -> Option<MultiViewBatch> {
        let chunk = self.plan.nth(n)?;
        Some(self.loader.build(self.plan.epoch(), chunk))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.plan.size_hint()
    }
}

impl ExactSizeIterator for MultiViewEpochIter {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::transforms::{Augment, RandAugment};

    /// `n` RGB 6x6 images with varied pixels; label `i % 3`.
    fn toy(n: usize) -> Arc<ImageSet> {
        let pixels = (0..n * 108).map(|i| (i * 37 % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 3) as u32).collect();
        Arc::new(
            ImageSet::new(
                pixels,
                labels,
                3,
                6,
                6,
                vec!["a".into(), "b".into(), "c".into()],
            )
            .unwrap(),
        )
    }

    fn weak() -> ViewAugment {
        ViewAugment::usb_weak(16, vec![0.5; 3], vec![0.25; 3]) // padding 2
    }

    fn strong() -> ViewAugment {
        weak().strong(RandAugment::usb())
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn identical_whatever_the_thread_pool() {
        let l =
            MultiViewLoader::weak_strong(toy(21), weak(), strong(), 4, Sampling::Shuffle, false, 9)
                .unwrap();
        let one: Vec<_> = pool(1).install(|| (0..2).flat_map(|e| l.epoch(e)).collect());
        let four: Vec<_> = pool(4).install(|| (0..2).flat_map(|e| l.epoch(e)).collect());
        assert_eq!(one.len(), 12);
        assert_eq!(one, four);
    }

    #[test]
    fn views_are_independent_draws_of_their_pipelines() {
        let set = toy(10);
        let l =
            MultiViewLoader::contrastive(set.clone(), weak(), 2, 5, Sampling::InOrder, false, 3)
                .unwrap();
        let b = l.epoch(0).next().unwrap();
        assert_eq!((b.num_views(), b.len(), b.shape), (2, 5, [5, 3, 6, 6]));
        assert_eq!(b.indices, [0, 1, 2, 3, 4]);
        // The two views of the same image differ for at least one image...
        assert!((0..5).any(|k| b.image(0, k) != b.image(1, k)));
        // ... and each is exactly the view applied with its derived generator.
        for v in 0..2 {
            for k in 0..5 {
                let mut rng = Rng::derive(3, "multiview-augment", &[0, k as u64, v as u64]);
                let mut want = vec![0f32; 108];
                weak().apply(set.image(k), 3, 6, 6, &mut rng, &mut want);
                assert_eq!(b.image(v, k), &want[..]);
            }
        }
        // A plain (non-random) view equals the normalized image.
        let plain =
            ViewAugment::from_augment(&Augment::normalize_only(vec![0.5; 3], vec![0.25; 3]));
        let l = MultiViewLoader::new(
            set.clone(),
            vec![plain.clone()],
            10,
            Sampling::InOrder,
            false,
            0,
        )
        .unwrap();
        let b = l.epoch(4).next().unwrap();
        let mut want = vec![0f32; 108];
        plain.apply(set.image(7), 3, 6, 6, &mut Rng::new(0), &mut want);
        assert_eq!(b.image(0, 7), &want[..]);
    }

    #[test]
    fn epochs_resume_and_cover_the_set() {
        let l =
            MultiViewLoader::weak_strong(toy(23), weak(), strong(), 5, Sampling::Shuffle, false, 1)
                .unwrap();
        assert_eq!(l.batches_per_epoch(), 5);
        let e2: Vec<_> = l.epoch(2).collect();
        let mut seen: Vec<usize> = e2.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..23).collect::<Vec<_>>());
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<_>>());
        assert_eq!(l.epoch_from(2, 3).collect::<Vec<_>>(), e2[3..]);
        let mut it = l.epoch(2);
        assert_eq!(it.nth(1).unwrap(), e2[1]);
        assert_eq!(it.next_batch_index(), 2);
        assert_ne!(l.order(0), l.order(1));
        let dl =
            MultiViewLoader::weak_strong(toy(23), weak(), strong(), 5, Sampling::Shuffle, true, 1)
                .unwrap();
        assert_eq!(dl.epoch(0).len(), 4);
        assert!(dl.epoch(0).all(|b| b.len() == 5));
    }

    #[test]
    fn weighted_sampling_and_tensors() {
        type B = burn::backend::Flex;
        let device = Default::default();
        let set = toy(12);
        let sampler = WeightedSampler::gcd_balanced(2, 10, 5).unwrap();
        let l = MultiViewLoader::contrastive(
            set,
            weak(),
            2,
            4,
            Sampling::Weighted(sampler.clone()),
            true,
            5,
        )
        .unwrap();
        assert_eq!(l.batches_per_epoch(), 3);
        let batches: Vec<_> = l.epoch(1).collect();
        let idx: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(idx, sampler.order(1));
        let b = &batches[0];
        let t = b.views_tensor::<B>(&device);
        assert_eq!(t.dims(), [8, 3, 6, 6]);
        let flat = t.into_data().to_vec::<f32>().unwrap();
        assert_eq!(&flat[..4 * 108], &b.views[0][..]);
        assert_eq!(&flat[4 * 108..], &b.views[1][..]);
        assert_eq!(b.view_tensor::<B>(1, &device).dims(), [4, 3, 6, 6]);
        let labels: Vec<i64> = b
            .labels_tensor::<B>(&device)
            .into_data()
            .convert::<i64>()
            .to_vec()
            .unwrap();
        assert_eq!(labels.len(), 4);
    }

    #[test]
    fn cropping_views_set_the_batch_shape() {
        let set = toy(5);
        let (m, s) = (vec![0.5; 3], vec![0.25; 3]);
        let weak = ViewAugment::imagenet_weak(4, m.clone(), s.clone());
        let strong = ViewAugment::imagenet_strong(4, m.clone(), s.clone());
        let l = MultiViewLoader::weak_strong(
            set.clone(),
            weak.clone(),
            strong,
            2,
            Sampling::InOrder,
            false,
            8,
        )
        .unwrap();
        assert_eq!(l.output_size(), (4, 4));
        let b = l.epoch(0).next().unwrap();
        assert_eq!(b.shape, [2, 3, 4, 4]);
        assert_eq!(b.views[1].len(), 2 * 48);
        let mut rng = Rng::derive(8, "multiview-augment", &[0, 1, 0]);
        let mut want = vec![0f32; 48];
        weak.apply(set.image(1), 3, 6, 6, &mut rng, &mut want);
        assert_eq!(b.image(0, 1), &want[..]);
        // Views of different output sizes cannot share a batch.
        let msg = MultiViewLoader::weak_strong(
            set,
            weak,
            ViewAugment::imagenet_strong(5, m, s),
            2,
            Sampling::InOrder,
            false,
            8,
        )
        .unwrap_err()
        .to_string();
        assert!(
            msg.contains("view 1 outputs 5x5") && msg.contains("view 0 4x4"),
            "{msg}"
        );
    }

    #[test]
    fn constructor_errors() {
        let e = |r: Result<MultiViewLoader>| r.unwrap_err().to_string();
        assert!(e(MultiViewLoader::new(
            toy(3),
            vec![],
            2,
            Sampling::InOrder,
            false,
            0
        ))
        .contains("no view"));
        assert!(e(MultiViewLoader::new(
            toy(3),
            vec![weak()],
            0,
            Sampling::InOrder,
            false,
            0
        ))
        .contains("batch size 0"));
        assert!(e(MultiViewLoader::new(
            toy(3),
            vec![weak()],
            4,
            Sampling::InOrder,
            true,
            0
        ))
        .contains("leaves no batch"));
        let s = WeightedSampler::gcd_balanced(1, 1, 0).unwrap();
        assert!(e(MultiViewLoader::new(
            toy(3),
            vec![weak()],
            1,
            Sampling::Weighted(s),
            false,
            0
        ))
        .contains("covers 2 indices"));
        let grey = ViewAugment::digits_weak(vec![0.5], vec![0.5]);
        let msg = e(MultiViewLoader::new(
            toy(3),
            vec![weak(), grey],
            1,
            Sampling::InOrder,
            false,
            0,
        ));
        assert!(msg.contains("view 1"), "{msg}");
        let big = ViewAugment::usb_weak(64, vec![0.5; 3], vec![0.5; 3]); // reflect padding 8 > 6
        assert!(e(MultiViewLoader::new(
            toy(3),
            vec![big],
            1,
            Sampling::InOrder,
            false,
            0
        ))
        .contains("reflect"));
    }
}
