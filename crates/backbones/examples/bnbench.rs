//! Forward + backward time of burn's `BatchNorm`, Unseen's `norm::BatchNorm` and a 3x3
//! convolution on a `[192, 16, 28, 28]` batch (the quickstart's first stage).
//!
//! `cargo run --release -p unseen-backbones --example bnbench`

use std::time::{Duration, Instant};

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;

type B = Autodiff<Flex>;

fn time(iters: u32, mut f: impl FnMut()) -> Duration {
    f();
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed() / iters
}

fn main() {
    let dev = Default::default();
    let x = Tensor::<B, 4>::random(
        [192, 16, 28, 28],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &dev,
    )
    .require_grad();
    let step = |y: Tensor<B, 4>| {
        let g = y.sum().backward();
        let _ = x.grad(&g);
    };
    let burn_bn = burn::nn::BatchNormConfig::new(16).init::<B>(&dev);
    let ours = unseen_backbones::norm::BatchNormConfig::new(16).init::<B>(&dev);
    let conv = burn::nn::conv::Conv2dConfig::new([16, 16], [3, 3])
        .with_padding(burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(&dev);
    println!(
        "burn BatchNorm     {:?}",
        time(5, || step(burn_bn.forward(x.clone())))
    );
    println!(
        "unseen BatchNorm   {:?}",
        time(5, || step(ours.forward(x.clone())))
    );
    println!(
        "conv 3x3 16->16    {:?}",
        time(5, || step(conv.forward(x.clone())))
    );
}
