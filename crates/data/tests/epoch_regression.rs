//! Bit-for-bit regression of the epoch iteration of [`Loader`] and [`MultiViewLoader`]:
//! index orders, batch boundaries, `drop_last`, `epoch_from` / `nth` resuming and the
//! per-image augmentation generators, on 103 real MNIST digits (`datasets/mnist-subset`).
//!
//! Each case hashes (FNV-1a, 64 bits) every batch of a few epochs (indices, labels, shape
//! and the bits of every `f32`) plus the iterators' lengths and positions. The expected
//! hashes were recorded with the code before the two loaders' epoch iteration was merged
//! into `epoch::EpochPlan` (commit 9b70e40); any change of order, batching or augmentation
//! changes them.

use std::path::PathBuf;
use std::sync::Arc;

use unseen_data::formats::load_named;
use unseen_data::loader::{Batch, Loader};
use unseen_data::multiview::{MultiViewBatch, MultiViewLoader, Sampling};
use unseen_data::sampler::WeightedSampler;
use unseen_data::transforms::{Augment, ViewAugment};
use unseen_data::ImageSet;

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn batch(&mut self, indices: &[usize], labels: &[u32], shape: [usize; 4], views: &[&[f32]]) {
        self.u64(indices.len() as u64);
        indices.iter().for_each(|&i| self.u64(i as u64));
        labels.iter().for_each(|&l| self.u64(l as u64));
        shape.iter().for_each(|&s| self.u64(s as u64));
        for v in views {
            self.u64(v.len() as u64);
            v.iter()
                .for_each(|x| self.bytes(&x.to_bits().to_le_bytes()));
        }
    }
    fn plain(&mut self, b: &Batch) {
        self.batch(&b.indices, &b.labels, b.shape, &[&b.images]);
    }
    fn multi(&mut self, b: &MultiViewBatch) {
        let views: Vec<&[f32]> = b.views.iter().map(Vec::as_slice).collect();
        self.batch(&b.indices, &b.labels, b.shape, &views);
    }
}

/// 103 training digits (every 97th image): 103 = 6 x 16 + 7, so the last batch of 16 is
/// partial.
fn digits() -> Arc<ImageSet> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist-subset");
    let train = load_named("mnist", &dir, true).unwrap();
    let picked: Vec<usize> = (0..103).map(|k| k * 97).collect();
    Arc::new(train.select(&picked))
}

fn loader_hash(set: &Arc<ImageSet>, shuffle: bool, drop_last: bool) -> u64 {
    let augment = Augment {
        crop_padding: 2,
        hflip: true,
        mean: vec![0.1307],
        std: vec![0.3081],
    };
    let l = Loader::new(set.clone(), 16, shuffle, drop_last, augment, 11).unwrap();
    let mut h = Fnv::new();
    h.u64(l.batches_per_epoch() as u64);
    for e in 0..3 {
        let it = l.epoch(e);
        h.u64(it.len() as u64);
        it.for_each(|b| h.plain(&b));
        l.order(e).iter().for_each(|&i| h.u64(i as u64));
    }
    // Resuming mid-epoch, past the end, and skipping with `nth`.
    let it = l.epoch_from(2, 3);
    h.u64((it.epoch() * 1000 + it.next_batch_index() * 10 + it.len()) as u64);
    it.for_each(|b| h.plain(&b));
    h.u64(l.epoch_from(1, 99).len() as u64);
    let mut it = l.epoch(4);
    h.plain(&it.nth(2).unwrap());
    h.u64(it.next_batch_index() as u64);
    h.plain(&it.next().unwrap());
    h.u64(it.nth(10).is_none() as u64);
    h.0
}

fn multiview_hash(set: &Arc<ImageSet>, sampling: Sampling, drop_last: bool) -> u64 {
    let (m, s) = (vec![0.1307], vec![0.3081]);
    let l = MultiViewLoader::weak_strong(
        set.clone(),
        ViewAugment::digits_weak(m.clone(), s.clone()),
        ViewAugment::digits_strong(m, s),
        16,
        sampling,
        drop_last,
        7,
    )
    .unwrap();
    let mut h = Fnv::new();
    h.u64((l.batches_per_epoch() * 1000 + l.epoch_len()) as u64);
    for e in 0..3 {
        let it = l.epoch(e);
        h.u64(it.len() as u64);
        it.for_each(|b| h.multi(&b));
        l.order(e).iter().for_each(|&i| h.u64(i as u64));
    }
    let it = l.epoch_from(1, 2);
    h.u64((it.epoch() * 1000 + it.next_batch_index() * 10 + it.len()) as u64);
    it.for_each(|b| h.multi(&b));
    h.u64(l.epoch_from(1, 99).len() as u64);
    let mut it = l.epoch(5);
    h.multi(&it.nth(3).unwrap());
    h.u64(it.next_batch_index() as u64);
    h.multi(&it.next().unwrap());
    h.u64(it.nth(10).is_none() as u64);
    h.0
}

#[test]
fn loader_batches_are_unchanged() {
    let set = digits();
    let got: Vec<String> = [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .map(|(shuffle, drop_last)| format!("{:016x}", loader_hash(&set, shuffle, drop_last)))
        .collect();
    // (shuffle, drop_last) = (no, no), (no, yes), (yes, no), (yes, yes).
    assert_eq!(
        got,
        [
            "32fefcf48c943199",
            "6bbbf44985f9df9e",
            "5c7b7a3f2b6660f5",
            "144cfa7a8a35e342"
        ]
    );
}

#[test]
fn multiview_batches_are_unchanged() {
    let set = digits();
    // A merged set of 40 labelled then 63 unlabelled images, sampled as SimGCD does.
    let weighted = || Sampling::Weighted(WeightedSampler::gcd_balanced(40, 63, 5).unwrap());
    let got: Vec<String> = [
        (Sampling::InOrder, false),
        (Sampling::InOrder, true),
        (Sampling::Shuffle, false),
        (Sampling::Shuffle, true),
        (weighted(), false),
        (weighted(), true),
    ]
    .into_iter()
    .map(|(sampling, drop_last)| format!("{:016x}", multiview_hash(&set, sampling, drop_last)))
    .collect();
    // (sampling, drop_last) = (in order, no), (in order, yes), (shuffle, no),
    // (shuffle, yes), (weighted, no), (weighted, yes).
    assert_eq!(
        got,
        [
            "1534567fb2c5eff8",
            "04c4a041a6e7d563",
            "674431d95ef845b1",
            "9aa056ab6e64d226",
            "12afb5500fe6fc7a",
            "fd914ea229a8c82f"
        ]
    );
}
