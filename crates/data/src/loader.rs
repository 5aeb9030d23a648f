//! Seeded, parallel batching of an in-memory [`ImageSet`] into `f32` buffers (and burn
//! tensors).
//!
//! - [`Loader`]: epochs over a set, shuffled or in order, with optional augmentation.
//! - [`OutlierStream`]: an endless stream of auxiliary outlier batches that cycles
//!   independently of the ID loader, as Outlier Exposure's training loop does.
//!
//! # Determinism
//! Every random choice is a pure function of `(seed, epoch, position)`, never of the
//! history of the process or of thread scheduling:
//! - the order of epoch `e` comes from a generator derived from `(seed, "loader", e)`, so
//!   epoch `e` is the same whether or not epochs `0..e` were iterated (a run resumed at
//!   epoch `e` sees exactly the batches of the uninterrupted run);
//! - the augmentation of the sample at position `p` of epoch `e` uses its own generator
//!   derived from `(seed, "loader-augment", e, p)`, so the parallel decode gives the same
//!   bytes with 1 or 64 threads.
//!
//! # Resuming
//! A [`Loader`] is resumed with [`Loader::epoch_from`]`(epoch, batch)`; an
//! [`OutlierStream`] with [`OutlierStream::seek`]`(epoch, batch)`, where `(epoch, batch)` is
//! what [`OutlierStream::position`] returned when the checkpoint was written. Nothing else
//! needs saving.
//!
//! # Cost model
//! Per batch of `n` images of `c x h x w`: one allocation of `n * c * h * w` `f32`s, then
//! one fused pass per image ([`Augment::apply`]: flip, padded crop and normalization read
//! each source byte at most once and write each output float once, about three flops per
//! value), spread over the rayon pool one image per task; deriving an image's generator
//! costs a few dozen integer operations. A CIFAR batch of 128 is 1.5 MB of output and well
//! under a millisecond of work per core, far below a training step, so there is no
//! prefetching thread: batches are built on demand when the iterator is advanced. Each
//! epoch (or outlier pass) also costs one `O(N)` permutation of the set's indices. The
//! images themselves are shared (`Arc<ImageSet>`), never copied.

use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::ImageSet;
use crate::epoch::{self, Chunk, EpochPlan};
use crate::error::{DataError, Result};
use crate::rng::Rng;
use crate::transforms::Augment;

/// One batch of images, normalized (and augmented) into `f32`, channel-first.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `shape[0] * shape[1] * shape[2] * shape[3]` values, image after image, CHW each.
    pub images: Vec<f32>,
    /// The label of each image.
    pub labels: Vec<u32>,
    /// The index of each image in the loader's [`ImageSet`].
    pub indices: Vec<usize>,
    /// `[n, channels, height, width]`.
    pub shape: [usize; 4],
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The `f32` values of image `k`.
    pub fn image(&self, k: usize) -> &[f32] {
        let per = self.shape[1] * self.shape[2] * self.shape[3];
        &self.images[k * per..(k + 1) * per]
    }

    /// The images as a `[n, c, h, w]` float tensor on `device`.
    pub fn images_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 4> {
        Tensor::from_data(TensorData::new(self.images.clone(), self.shape), device)
    }

    /// The labels as a `[n]` integer tensor on `device`.
    pub fn labels_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 1, Int> {
        let labels: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        Tensor::from_data(TensorData::new(labels, [self.len()]), device)
    }

    /// Images and labels as tensors, without copying the image buffer.
    pub fn into_tensors<B: Backend>(self, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
        let labels = self.labels_tensor(device);
        let images = Tensor::from_data(TensorData::new(self.images, self.shape), device);
        (images, labels)
    }
}

/// Builds the batch of `indices`, decoding image `k` with `rng_for(k)` in parallel.
fn build_batch(
    set: &ImageSet,
    augment: &Augment,
    indices: Vec<usize>,
    rng_for: impl Fn(usize) -> Rng + Sync,
) -> Batch {
    let (c, h, w) = (set.channels, set.height, set.width);
    let per = set.image_size();
    let mut images = vec![0f32; indices.len() * per];
    images
        .par_chunks_mut(per)
        .zip(indices.par_iter())
        .enumerate()
        .for_each(|(k, (dst, &i))| {
            let mut rng = rng_for(k);
            augment.apply(set.image(i), c, h, w, &mut rng, dst);
        });
    Batch {
        labels: indices.iter().map(|&i| set.labels[i]).collect(),
        shape: [indices.len(), c, h, w],
        images,
        indices,
    }
}

/// Checks what [`Loader::new`] and [`OutlierStream::new`] have in common.
fn check_common(what: &str, set: &ImageSet, batch_size: usize, augment: &Augment) -> Result<()> {
    if set.is_empty() {
        return Err(DataError::Split(format!("{what}: the image set is empty")));
    }
    if batch_size == 0 {
        return Err(DataError::Split(format!("{what}: batch size 0")));
    }
    augment.validate(set.channels)
}

/// Batches over an in-memory [`ImageSet`], epoch by epoch.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use unseen_data::{ImageSet, loader::Loader, transforms::Augment};
/// # fn f(set: ImageSet) -> unseen_data::error::Result<()> {
/// let augment = Augment { crop_padding: 4, hflip: true, mean: vec![0.5; 3], std: vec![0.25; 3] };
/// let loader = Loader::new(Arc::new(set), 128, true, false, augment, 0)?;
/// for epoch in 0..10 {
///     for batch in loader.epoch(epoch) {
///         // batch.images: [n, 3, 32, 32] floats, batch.labels: n labels
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Loader {
    set: Arc<ImageSet>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    augment: Augment,
    seed: u64,
}

impl Loader {
    /// A loader over `set` in batches of `batch_size`.
    ///
    /// - `shuffle`: a fresh seeded permutation every epoch (else the set's order);
    /// - `drop_last`: drop the final incomplete batch of an epoch (PyTorch's `drop_last`);
    /// - `augment`: the per-image pipeline, including the normalization; pass
    ///   [`Augment::normalize_only`] (or [`Augment::for_eval`]) to only normalize;
    /// - `seed`: with the epoch, fixes every order and augmentation.
    ///
    /// # Errors
    /// [`DataError::Split`] if the set is empty, `batch_size` is 0, `drop_last` would leave
    /// no batch, or `augment` does not fit the set's channels.
    pub fn new(
        set: Arc<ImageSet>,
        batch_size: usize,
        shuffle: bool,
        drop_last: bool,
        augment: Augment,
        seed: u64,
    ) -> Result<Self> {
        check_common("loader", &set, batch_size, &augment)?;
        if drop_last && set.len() < batch_size {
            return Err(DataError::Split(format!(
                "loader: batch size {batch_size} with drop_last leaves no batch from {} images",
                set.len()
            )));
        }
        Ok(Self {
            set,
            batch_size,
            shuffle,
            drop_last,
            augment,
            seed,
        })
    }

    /// The images this loader reads.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// Images per batch (the last batch of an epoch may hold fewer unless `drop_last`).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The per-image pipeline.
    pub fn augment(&self) -> &Augment {
        &self.augment
    }

    /// Number of batches each epoch yields.
    pub fn batches_per_epoch(&self) -> usize {
        epoch::batches_per_epoch(self.set.len(), self.batch_size, self.drop_last)
    }

    /// The order in which epoch `epoch` visits the images (every index exactly once). A
    /// pure function of `(seed, epoch)`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let n = self.set.len();
        if self.shuffle {
            Rng::derive(self.seed, "loader", &[epoch as u64]).permutation(n)
        } else {
            (0..n).collect()
        }
    }

    /// The batches of epoch `epoch`.
    pub fn epoch(&self, epoch: usize) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `first_batch` on: what the rest of that
    /// epoch would have yielded (for resuming mid-epoch). Skipped batches are not built.
    pub fn epoch_from(&self, epoch: usize, first_batch: usize) -> EpochIter {
        let order = self.order(epoch);
        EpochIter {
            loader: self.clone(),
            plan: EpochPlan::new(epoch, order, self.batch_size, self.drop_last, first_batch),
        }
    }

    /// The batch of `chunk` of epoch `epoch`: the image at position `p` of the epoch is
    /// augmented with the generator of `(seed, "loader-augment", epoch, p)`.
    fn build(&self, epoch: usize, chunk: Chunk) -> Batch {
        let (seed, e, start) = (self.seed, epoch as u64, chunk.start);
        build_batch(&self.set, &self.augment, chunk.indices, |k| {
            Rng::derive(seed, "loader-augment", &[e, (start + k) as u64])
        })
    }
}

/// The batches of one epoch of a [`Loader`] (built on demand, in parallel within a batch).
#[derive(Debug, Clone)]
pub struct EpochIter {
    loader: Loader,
    plan: EpochPlan,
}

impl EpochIter {
    /// The epoch being iterated.
    pub fn epoch(&self) -> usize {
        self.plan.epoch()
    }

    /// The index within the epoch of the batch the next call to `next` returns.
    pub fn next_batch_index(&self) -> usize {
        self.plan.next_batch_index()
    }
}

impl Iterator for EpochIter {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let chunk = self.plan.next()?;
        Some(self.loader.build(self.plan.epoch(), chunk))
    }

    fn nth(&mut self, n: usize) -> Option<Batch> {
        let chunk = self.plan.nth(n)?;
        Some(self.loader.build(self.plan.epoch(), chunk))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.plan.size_hint()
    }
}

impl ExactSizeIterator for EpochIter {}

/// The order in which an [`OutlierStream`] visits its set on each pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutlierOrder {
    /// The Outlier Exposure reference: one fixed order, entered at a random offset on each
    /// pass and followed (wrapping around) from there. The reference's fixed order is the
    /// file order of its outlier set, which is already random (80M Tiny Images); ours is a
    /// permutation drawn once from the seed, so a set stored class by class does not give
    /// one-class batches.
    #[default]
    Offset,
    /// A fresh random permutation on each pass (a `DataLoader(shuffle=True)` cycled).
    Shuffle,
}

/// An endless stream of outlier batches for Outlier Exposure-style training, cycling
/// independently of the ID [`Loader`].
///
/// The reference (`hendrycks/outlier-exposure`, `CIFAR/oe_tune.py`, `train()`) does, at the
/// start of every ID epoch,
/// `train_loader_out.dataset.offset = np.random.randint(len(train_loader_out.dataset))`,
/// then reads the outlier set in order (`shuffle=False`) from that offset, wrapping around
/// (`index = (index + offset) % len`), one outlier batch per ID batch. This stream does the
/// same with [`OutlierOrder::Offset`] (the default):
/// - [`OutlierStream::start_epoch`]`(e)` (call it when ID epoch `e` starts) begins pass 0
///   of epoch `e` at a random offset;
/// - [`OutlierStream::next_batch`] returns `batch_size` images, always a full batch: when a
///   pass runs out, the next pass of the same epoch starts at a fresh offset (and a batch
///   may straddle two passes). The reference would instead end the ID epoch early (`zip`
///   stops at the shorter loader); here the ID loader alone decides the epoch length.
///
/// Pass `k` of epoch `e` is a pure function of `(seed, e, k)` and the augmentation of the
/// `j`-th outlier image of epoch `e` of `(seed, e, j)`, so `(epoch, batch)` is the whole
/// state: save [`OutlierStream::position`] and restore with [`OutlierStream::seek`].
#[derive(Debug, Clone)]
pub struct OutlierStream {
    set: Arc<ImageSet>,
    batch_size: usize,
    augment: Augment,
    seed: u64,
    order_kind: OutlierOrder,
    /// The fixed order of [`OutlierOrder::Offset`] (empty for `Shuffle`).
    base: Vec<usize>,
    epoch: usize,
    /// Batches already returned in this epoch.
    batch: usize,
    /// The pass of `order` within this epoch.
    pass: usize,
    /// Next position in `order`.
    pos: usize,
    /// The visiting order of the current pass.
    order: Vec<usize>,
}

impl OutlierStream {
    /// A stream over `set` in batches of `batch_size`, positioned at the start of epoch 0,
    /// with [`OutlierOrder::Offset`] (change it with [`OutlierStream::with_order`]).
    ///
    /// # Errors
    /// [`DataError::Split`] if the set is empty, `batch_size` is 0, or `augment` does not fit
    /// the set's channels.
    pub fn new(set: Arc<ImageSet>, batch_size: usize, augment: Augment, seed: u64) -> Result<Self> {
        check_common("outlier stream", &set, batch_size, &augment)?;
        let mut s = Self {
            set,
            batch_size,
            augment,
            seed,
            order_kind: OutlierOrder::Offset,
            base: Vec::new(),
            epoch: 0,
            batch: 0,
            pass: 0,
            pos: 0,
            order: Vec::new(),
        };
        s.set_order_kind(OutlierOrder::Offset);
        Ok(s)
    }

    /// The same stream with another pass order, repositioned at the start of the current
    /// epoch.
    pub fn with_order(mut self, order: OutlierOrder) -> Self {
        self.set_order_kind(order);
        self
    }

    fn set_order_kind(&mut self, order: OutlierOrder) {
        self.order_kind = order;
        self.base = match order {
            OutlierOrder::Offset => {
                Rng::derive(self.seed, "outlier-order", &[]).permutation(self.set.len())
            }
            OutlierOrder::Shuffle => Vec::new(),
        };
        self.seek(self.epoch, 0);
    }

    /// The images this stream reads.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// How each pass is ordered.
    pub fn order_kind(&self) -> OutlierOrder {
        self.order_kind
    }

    /// The visiting order of pass `pass` of epoch `epoch` (every index exactly once). A pure
    /// function of `(seed, epoch, pass)` and the order kind.
    pub fn pass_order(&self, epoch: usize, pass: usize) -> Vec<usize> {
        let n = self.set.len();
        let mut rng = Rng::derive(self.seed, "outlier", &[epoch as u64, pass as u64]);
        match self.order_kind {
            OutlierOrder::Offset => {
                let offset = rng.below(n);
                (0..n).map(|i| self.base[(offset + i) % n]).collect()
            }
            OutlierOrder::Shuffle => rng.permutation(n),
        }
    }

    /// Starts epoch `epoch`: the next batch is its first, from a fresh random offset (the
    /// reference's per-epoch `offset = np.random.randint(len)`). Same as `seek(epoch, 0)`.
    pub fn start_epoch(&mut self, epoch: usize) {
        self.seek(epoch, 0);
    }

    /// Positions the stream so that the next batch is batch `batch` of epoch `epoch`, exactly
    /// as if the epoch had been started and `batch` batches drawn. Skipped batches are not
    /// built (costs one pass order, `O(N)`).
    pub fn seek(&mut self, epoch: usize, batch: usize) {
        let n = self.set.len();
        let taken = batch * self.batch_size;
        self.epoch = epoch;
        self.batch = batch;
        self.pass = taken / n;
        self.pos = taken % n;
        self.order = self.pass_order(epoch, self.pass);
    }

    /// `(epoch, batch)`: the position of the next batch; save it in checkpoints and restore
    /// it with [`OutlierStream::seek`].
    pub fn position(&self) -> (usize, usize) {
        (self.epoch, self.batch)
    }

    /// The next `batch_size` outlier images (never fewer: the stream wraps around).
    pub fn next_batch(&mut self) -> Batch {
        let n = self.set.len();
        let mut indices = Vec::with_capacity(self.batch_size);
        while indices.len() < self.batch_size {
            if self.pos == n {
                self.pass += 1;
                self.pos = 0;
                self.order = self.pass_order(self.epoch, self.pass);
            }
            let take = (self.batch_size - indices.len()).min(n - self.pos);
            indices.extend_from_slice(&self.order[self.pos..self.pos + take]);
            self.pos += take;
        }
        let (seed, e) = (self.seed, self.epoch as u64);
        let first = (self.batch * self.batch_size) as u64;
        self.batch += 1;
        build_batch(&self.set, &self.augment, indices, |k| {
            Rng::derive(seed, "outlier-augment", &[e, first + k as u64])
        })
    }
}

impl Iterator for OutlierStream {
    type Item = Batch;

    /// Always `Some`: the stream never ends.
    fn next(&mut self) -> Option<Batch> {
        Some(self.next_batch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::to_f32_normalized;

    /// `n` RGB 4x4 images; image `i` has all pixels `i` except pixel 0 of channel 0, which is
    /// `255 - i` (so flips and crops change it); label `i % 3`.
    fn toy(n: usize) -> Arc<ImageSet> {
        let mut pixels = Vec::new();
        for i in 0..n {
            let mut img = vec![i as u8; 48];
            img[0] = 255 - i as u8;
            pixels.extend(img);
        }
        let labels = (0..n).map(|i| (i % 3) as u32).collect();
        Arc::new(
            ImageSet::new(
                pixels,
                labels,
                3,
                4,
                4,
                vec!["a".into(), "b".into(), "c".into()],
            )
            .unwrap(),
        )
    }

    fn train_aug() -> Augment {
        Augment {
            crop_padding: 1,
            hflip: true,
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.2, 0.3, 0.4],
        }
    }

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn identical_batches_whatever_the_thread_pool() {
        let set = toy(37);
        let a = Loader::new(set.clone(), 8, true, false, train_aug(), 42).unwrap();
        let b = Loader::new(set, 8, true, false, train_aug(), 42).unwrap();
        let one: Vec<Batch> = pool(1).install(|| (0..2).flat_map(|e| a.epoch(e)).collect());
        let two: Vec<Batch> = pool(2).install(|| (0..2).flat_map(|e| b.epoch(e)).collect());
        let four: Vec<Batch> = pool(4).install(|| (0..2).flat_map(|e| b.epoch(e)).collect());
        assert_eq!(one.len(), 10);
        assert_eq!(one, two);
        assert_eq!(one, four);
        // The augmentation really is random (not all images of the epoch identical to the
        // plain normalization).
        let plain = Loader::new(toy(37), 8, true, false, train_aug().for_eval(), 42).unwrap();
        assert_ne!(one[0].images, plain.epoch(0).next().unwrap().images);
        assert_eq!(one[0].indices, plain.epoch(0).next().unwrap().indices);
    }

    #[test]
    fn epoch_is_independent_of_earlier_epochs() {
        let loader = Loader::new(toy(20), 6, true, false, train_aug(), 7).unwrap();
        let mut sequential = Vec::new();
        for e in 0..4 {
            sequential.push(loader.epoch(e).collect::<Vec<_>>());
        }
        let fresh = Loader::new(toy(20), 6, true, false, train_aug(), 7).unwrap();
        assert_eq!(fresh.epoch(3).collect::<Vec<_>>(), sequential[3]);
        // Resuming mid-epoch gives the rest of the epoch.
        assert_eq!(
            fresh.epoch_from(2, 2).collect::<Vec<_>>(),
            sequential[2][2..]
        );
        let mut it = fresh.epoch(1);
        assert_eq!(it.nth(2).unwrap(), sequential[1][2]);
        assert_eq!(it.next_batch_index(), 3);
        // Orders differ between epochs and seeds.
        assert_ne!(loader.order(0), loader.order(1));
        let other = Loader::new(toy(20), 6, true, false, train_aug(), 8).unwrap();
        assert_ne!(loader.order(0), other.order(0));
    }

    #[test]
    fn every_index_once_per_epoch() {
        let loader = Loader::new(toy(23), 5, true, false, train_aug(), 1).unwrap();
        assert_eq!(loader.batches_per_epoch(), 5);
        for e in 0..3 {
            let batches: Vec<Batch> = loader.epoch(e).collect();
            assert_eq!(batches.len(), 5);
            assert_eq!(
                batches.iter().map(Batch::len).collect::<Vec<_>>(),
                [5, 5, 5, 5, 3]
            );
            let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
            assert_ne!(seen, (0..23).collect::<Vec<_>>(), "shuffled");
            seen.sort_unstable();
            assert_eq!(seen, (0..23).collect::<Vec<_>>());
            for b in &batches {
                assert_eq!(b.shape, [b.len(), 3, 4, 4]);
                assert_eq!(b.images.len(), b.len() * 48);
                for (k, &i) in b.indices.iter().enumerate() {
                    assert_eq!(b.labels[k], (i % 3) as u32);
                }
            }
        }
    }

    #[test]
    fn drop_last_and_in_order_loading() {
        let set = toy(23);
        let dl = Loader::new(set.clone(), 5, true, true, train_aug(), 1).unwrap();
        assert_eq!(dl.batches_per_epoch(), 4);
        assert!(dl.epoch(0).all(|b| b.len() == 5));
        assert_eq!(dl.epoch(0).len(), 4);

        // No shuffle, no augmentation: the set in order, exactly normalized.
        let aug = train_aug().for_eval();
        let plain = Loader::new(set.clone(), 10, false, false, aug.clone(), 1).unwrap();
        let batches: Vec<Batch> = plain.epoch(5).collect();
        let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(indices, (0..23).collect::<Vec<_>>());
        let mut want = vec![0f32; 48];
        to_f32_normalized(set.image(12), &aug.mean, &aug.std, 3, 4, 4, &mut want);
        assert_eq!(batches[1].image(2), &want[..]);
    }

    #[test]
    fn constructor_errors() {
        let empty = Arc::new(ImageSet {
            pixels: vec![],
            labels: vec![],
            channels: 3,
            height: 4,
            width: 4,
            class_names: vec!["a".into()],
        });
        let e = Loader::new(empty.clone(), 4, true, false, train_aug(), 0).unwrap_err();
        assert!(e.to_string().contains("empty"));
        assert!(OutlierStream::new(empty, 4, train_aug(), 0).is_err());
        let e = Loader::new(toy(3), 0, true, false, train_aug(), 0).unwrap_err();
        assert!(e.to_string().contains("batch size 0"));
        let e = Loader::new(toy(3), 4, true, true, train_aug(), 0).unwrap_err();
        assert!(e.to_string().contains("leaves no batch"));
        let grey = Augment::normalize_only(vec![0.5], vec![0.5]);
        assert!(Loader::new(toy(3), 2, true, false, grey, 0).is_err());
    }

    #[test]
    fn batch_to_burn_tensors() {
        type B = burn::backend::Flex;
        let device = Default::default();
        let loader = Loader::new(toy(5), 4, false, false, train_aug().for_eval(), 0).unwrap();
        let batch = loader.epoch(0).next().unwrap();
        let images = batch.images_tensor::<B>(&device);
        assert_eq!(images.dims(), [4, 3, 4, 4]);
        assert_eq!(images.into_data().to_vec::<f32>().unwrap(), batch.images);
        let (images, labels) = batch.clone().into_tensors::<B>(&device);
        assert_eq!(images.dims(), [4, 3, 4, 4]);
        let labels: Vec<i64> = labels.into_data().convert::<i64>().to_vec().unwrap();
        assert_eq!(labels, [0, 1, 2, 0]);
    }

    fn stream(n: usize, bs: usize, seed: u64) -> OutlierStream {
        OutlierStream::new(toy(n), bs, train_aug(), seed).unwrap()
    }

    #[test]
    fn outlier_stream_is_deterministic_across_thread_pools() {
        let take = |threads: usize| -> Vec<Batch> {
            let mut s = stream(11, 4, 3);
            pool(threads).install(|| {
                let mut out = Vec::new();
                for e in 0..3 {
                    s.start_epoch(e);
                    out.extend((&mut s).take(4));
                }
                out
            })
        };
        let one = take(1);
        assert_eq!(one, take(2));
        assert!(one.iter().all(|b| b.len() == 4));
    }

    #[test]
    fn outlier_passes_cover_the_set_and_follow_the_offset_order() {
        // 10 images, batches of 4: 3 passes in 30 images, batches straddle passes.
        let mut s = stream(10, 4, 9);
        let seq: Vec<usize> = (&mut s).take(8).flat_map(|b| b.indices).take(30).collect();
        let passes: Vec<&[usize]> = seq.chunks(10).collect();
        for p in &passes {
            let mut sorted = p.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        // Offset order: every pass is a rotation of the same fixed cycle.
        let successor = |p: &[usize]| -> Vec<usize> {
            let mut next = vec![0; 10];
            for i in 0..10 {
                next[p[i]] = p[(i + 1) % 10];
            }
            next
        };
        assert_eq!(successor(passes[0]), successor(passes[1]));
        assert_eq!(successor(passes[0]), successor(passes[2]));
        // ... entered at different offsets (for at least one of the passes).
        assert!(passes[0][0] != passes[1][0] || passes[1][0] != passes[2][0]);

        // Shuffle order: fresh permutations, still covering the set.
        let mut s = stream(10, 5, 9).with_order(OutlierOrder::Shuffle);
        let a: Vec<usize> = s
            .next_batch()
            .indices
            .into_iter()
            .chain(s.next_batch().indices)
            .collect();
        let b: Vec<usize> = s
            .next_batch()
            .indices
            .into_iter()
            .chain(s.next_batch().indices)
            .collect();
        let mut sa = a.clone();
        sa.sort_unstable();
        assert_eq!(sa, (0..10).collect::<Vec<_>>());
        assert_ne!(successor(&a), successor(&b));
    }

    #[test]
    fn outlier_epochs_and_seek_reproduce_the_uninterrupted_stream() {
        let mut a = stream(13, 5, 2);
        let mut run = Vec::new();
        for e in 0..3 {
            a.start_epoch(e);
            run.push((&mut a).take(6).collect::<Vec<_>>());
        }
        assert_eq!(a.position(), (2, 6));
        // Epoch 2 alone, without epochs 0 and 1.
        let mut b = stream(13, 5, 2);
        b.start_epoch(2);
        assert_eq!((&mut b).take(6).collect::<Vec<_>>(), run[2]);
        // Resume mid-epoch from a saved position.
        let mut c = stream(13, 5, 2);
        c.seek(1, 4);
        assert_eq!(c.position(), (1, 4));
        assert_eq!((&mut c).take(2).collect::<Vec<_>>(), run[1][4..]);
        // Each epoch starts at a fresh offset.
        let firsts: Vec<usize> = run.iter().map(|r| r[0].indices[0]).collect();
        assert!(
            firsts[0] != firsts[1] || firsts[1] != firsts[2],
            "{firsts:?}"
        );
    }

    #[test]
    fn outlier_batch_larger_than_the_set() {
        let mut s = stream(3, 7, 0);
        let b = s.next_batch();
        assert_eq!(b.len(), 7);
        let mut first = b.indices[..3].to_vec();
        first.sort_unstable();
        assert_eq!(first, [0, 1, 2]);
        assert_eq!(s.position(), (0, 1));
        let mut again = stream(3, 7, 0);
        again.seek(0, 1);
        assert_eq!(again.next_batch(), s.next_batch());
    }
}
