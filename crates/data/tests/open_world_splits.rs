//! GCD and open-set SSL splits, multi-view loading and RandAugment on the bundled MNIST and
//! Fashion-MNIST subsets (`datasets/`, see its README: 1000 / 500 training and 500 / 300
//! test images per class). Expected sizes follow from the reference rules by hand:
//! - GCD (`subsample_instances`): `int(0.5 * 5 * 1000) = 2500` labelled old-class MNIST
//!   images, drawn over all five old classes together;
//! - OSSL (`sample_labeled_data`, `include_lb_to_ulb=True`): 25 labels x 6 seen classes,
//!   the unlabelled set is the whole training set.

use std::path::PathBuf;
use std::sync::Arc;

use unseen_data::formats::load_named;
use unseen_data::multiview::{MultiViewLoader, Sampling};
use unseen_data::sampler::WeightedSampler;
use unseen_data::splits::{GcdConfig, GcdSplit, OsslConfig, OsslSplit};
use unseen_data::transforms::{RandAugment, RandOp, ViewAugment};
use unseen_data::{ImageSet, Rng};

fn dataset(name: &str, train: bool) -> ImageSet {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets")
        .join(format!("{name}-subset"));
    load_named(name, &dir, train).unwrap()
}

#[test]
fn gcd_on_mnist_follows_the_reference_rules() {
    let train = dataset("mnist", true);
    let test = dataset("mnist", false);
    let cfg = GcdConfig::for_dataset("mnist").unwrap();
    let s = GcdSplit::new(&train, &cfg, 0).unwrap();
    assert_eq!(s.labelled.len(), 2500);
    assert_eq!(s.unlabelled.len(), 7500);
    assert_eq!(s.is_old.iter().filter(|&&o| o).count(), 2500);
    assert_eq!(s.classes, (0..10).collect::<Vec<u32>>());
    // Not stratified: per-class counts vary around 500 (hypergeometric, sd about 14)
    // but are not all equal.
    let counts = s.labelled.class_counts();
    assert_eq!(counts[5..], [0; 5]);
    assert!(
        counts[..5].iter().all(|&c| (430..=570).contains(&c)),
        "{counts:?}"
    );
    assert!(counts[..5].iter().any(|&c| c != 500), "{counts:?}");
    // Every image is where it says it is.
    for (k, &i) in s.labelled_indices.iter().enumerate().step_by(97) {
        assert_eq!(s.labelled.image(k), train.image(i));
    }
    for (k, &i) in s.unlabelled_indices.iter().enumerate().step_by(89) {
        assert_eq!(s.unlabelled.image(k), train.image(i));
        assert_eq!(s.unlabelled.labels[k], train.labels[i]);
    }
    // The test split keeps every class: 500 per class, half of them old.
    let t = s.test(&test).unwrap();
    assert_eq!(t.set.len(), 5000);
    assert_eq!(t.is_old.iter().filter(|&&o| o).count(), 2500);
    // Deterministic per seed.
    assert_eq!(GcdSplit::new(&train, &cfg, 0).unwrap(), s);
    assert_ne!(
        GcdSplit::new(&train, &cfg, 1).unwrap().labelled_indices,
        s.labelled_indices
    );
}

#[test]
fn gcd_relabels_old_classes_first() {
    let train = dataset("mnist", true);
    let mut cfg = GcdConfig::new("7,3,1");
    cfg.labelled_fraction = 0.1; // int(0.1 * 3000) = 300
    let s = GcdSplit::new(&train, &cfg, 5).unwrap();
    assert_eq!(s.classes, [7, 3, 1, 0, 2, 4, 5, 6, 8, 9]);
    assert_eq!(s.labelled.len(), 300);
    assert_eq!(s.unlabelled.len(), 9700);
    assert_eq!(s.labelled.class_names[..3], ["7", "3", "1"]);
    for (k, &i) in s.labelled_indices.iter().enumerate() {
        let want = [7u32, 3, 1]
            .iter()
            .position(|&c| c == train.labels[i])
            .unwrap() as u32;
        assert_eq!(s.labelled.labels[k], want);
    }
    // Unlabelled "0" images are label 3, "9" images label 9.
    for (k, &i) in s.unlabelled_indices.iter().enumerate() {
        match train.labels[i] {
            0 => assert_eq!(s.unlabelled.labels[k], 3),
            9 => assert_eq!(s.unlabelled.labels[k], 9),
            _ => {}
        }
    }
}

#[test]
fn ossl_on_fashion_mnist() {
    let train = dataset("fashion-mnist", true);
    let test = dataset("fashion-mnist", false);
    let s = OsslSplit::new(&train, &OsslConfig::digits(25), 0).unwrap();
    assert_eq!(s.labelled.class_counts(), vec![25; 6]);
    assert_eq!(s.labelled.class_names[0], "T-shirt/top");
    assert_eq!(s.unlabelled.len(), 5000);
    assert_eq!(s.is_seen.iter().filter(|&&b| b).count(), 3000);
    assert_eq!(s.unlabelled.class_counts(), vec![500; 10]);
    let t = s.test(&test).unwrap();
    assert_eq!(t.closed.len(), 1800);
    assert_eq!(t.closed.class_counts(), vec![300; 6]);
    assert_eq!(t.full.len(), 3000);
    assert_eq!(
        t.full.class_counts(),
        vec![300, 300, 300, 300, 300, 300, 1200]
    );
    assert_eq!(t.full.class_names[6], "unseen");
    for (k, &i) in t.closed_indices.iter().enumerate().step_by(101) {
        assert_eq!(t.closed.image(k), test.image(i));
    }
    // Without the labelled images in the unlabelled set: 5000 - 150.
    let mut cfg = OsslConfig::digits(4);
    cfg.include_labelled_in_unlabelled = false;
    let s4 = OsslSplit::new(&train, &cfg, 0).unwrap();
    assert_eq!((s4.labelled.len(), s4.unlabelled.len()), (24, 4976));
    // More labels than a class has.
    let e = OsslSplit::new(&train, &OsslConfig::digits(501), 0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "class 0 (T-shirt/top) has 500 training images, fewer than labels_per_class = 501"
        ),
        "{e}"
    );
}

#[test]
fn simgcd_style_loading_on_mnist() {
    let train = dataset("mnist", true);
    let split = GcdSplit::new(&train, &GcdConfig::new("0-4"), 3).unwrap();
    let merged = split.merged();
    let sampler = WeightedSampler::gcd_balanced(
        merged.num_labelled,
        merged.set.len() - merged.num_labelled,
        3,
    )
    .unwrap();
    let view = ViewAugment::digits_weak(vec![0.1307], vec![0.3081]);
    let loader = MultiViewLoader::contrastive(
        Arc::new(merged.set.clone()),
        view,
        2,
        128,
        Sampling::Weighted(sampler),
        true,
        3,
    )
    .unwrap();
    assert_eq!(loader.batches_per_epoch(), 10000 / 128);
    let threads = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
            .install(|| loader.epoch(0).take(3).collect::<Vec<_>>())
    };
    let one = threads(1);
    assert_eq!(one, threads(3));
    let mut labelled = 0;
    for b in &one {
        assert_eq!(b.shape, [128, 1, 28, 28]);
        labelled += b.indices.iter().filter(|&&i| merged.is_labelled(i)).count();
    }
    // Half of the draws are labelled (384 draws; sd about 10).
    assert!((150..=234).contains(&labelled), "{labelled}");
}

#[test]
fn strong_views_of_real_digits() {
    let train = dataset("mnist", true);
    let strong = ViewAugment::digits_strong(vec![0.0], vec![1.0]);
    let mut cutouts = 0;
    let mut changed = 0;
    let mut counts = std::collections::HashMap::new();
    for i in 0..300 {
        let mut rng = Rng::new(i as u64);
        let mut out = vec![0u8; 784];
        let d = strong.apply_u8(train.image(i), 1, 28, 28, &mut rng, &mut out);
        assert!(!d.flipped);
        let ra = d.randaugment.unwrap();
        assert_eq!(ra.ops.len(), 3);
        for (op, _) in &ra.ops {
            assert_ne!(*op, RandOp::Color);
            *counts.entry(*op).or_insert(0) += 1;
        }
        if let Some(r) = ra.cutout {
            cutouts += 1;
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    assert_eq!(out[y * 28 + x], 123);
                }
            }
        }
        changed += (out != train.image(i)) as usize;
        // Replaying with the same seed gives the same bytes.
        let mut again = vec![0u8; 784];
        strong.apply_u8(
            train.image(i),
            1,
            28,
            28,
            &mut Rng::new(i as u64),
            &mut again,
        );
        assert_eq!(again, out);
    }
    assert_eq!(cutouts, 300);
    assert!(changed >= 295, "{changed}");
    assert_eq!(counts.len(), 13);
    // The grey list is in the strong view.
    assert_eq!(strong.randaugment, Some(RandAugment::grey()));
}
