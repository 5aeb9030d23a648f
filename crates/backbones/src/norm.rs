//! BatchNorm for `[batch, channels, height, width]` tensors, as PyTorch's `nn.BatchNorm2d`.
//!
//! Same parameters and names as burn's `BatchNorm` (`gamma`, `beta`, `running_mean`,
//! `running_var`), so records, burn-store's PyTorch adapter (`gamma`/`beta` ↔
//! `weight`/`bias`) and our deterministic initialisation treat it the same. Two reasons for
//! our own:
//! - **Speed.** burn 0.21's `BatchNorm` computes statistics through `swap_dims`, and on
//!   `flex` that copy plus the `[1, C, 1, 1]` broadcasts cost more than the convolutions
//!   (measured on `[192, 16, 28, 28]`, forward + backward: 610 ms for burn's layer, 290 ms
//!   for a 3x3 convolution). Here the tensor is viewed as `[batch·channels, height·width]`
//!   and every broadcast is along the last axis, which `flex` runs as a contiguous loop
//!   (see `examples/bnbench.rs`).
//! - **PyTorch parity.** The running variance is updated with the unbiased batch variance
//!   (`n/(n−1)`), as PyTorch does; normalisation in training uses the biased one.

use burn::module::{Module, Param, RunningState};
use burn::prelude::*;

/// Configuration of a [`BatchNorm`].
#[derive(Config, Debug)]
pub struct BatchNormConfig {
    /// Number of channels.
    pub num_features: usize,
    /// Added to the variance (PyTorch default 1e-5).
    #[config(default = 1e-5)]
    pub epsilon: f64,
    /// Running statistics update: `running = (1 − momentum)·running + momentum·batch`
    /// (PyTorch default 0.1).
    #[config(default = 0.1)]
    pub momentum: f64,
}

/// Batch normalisation over the channel axis of a 4-D tensor.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// Scale (PyTorch `weight`).
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift (PyTorch `bias`).
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Momentum of the running statistics.
    pub momentum: f64,
    /// Numerical stability term.
    pub epsilon: f64,
    /// Normalise with the running statistics even under autodiff (and leave them alone):
    /// inference that needs gradients, such as the input pre-processing of ODIN and of Lee
    /// et al.'s Mahalanobis detector, which PyTorch runs in `model.eval()`. Not saved in
    /// records; `false` after [`BatchNormConfig::init`].
    pub use_running_stats: bool,
}

impl BatchNormConfig {
    /// Weight 1, bias 0, running mean 0, running variance 1.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm<B> {
        let c = self.num_features;
        BatchNorm {
            gamma: Param::from_tensor(Tensor::ones([c], device)),
            beta: Param::from_tensor(Tensor::zeros([c], device)),
            running_mean: RunningState::new(Tensor::zeros([c], device)),
            running_var: RunningState::new(Tensor::ones([c], device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
            use_running_stats: false,
        }
    }
}

/// `[c]` per-channel values as a `[n·c, 1]` column matching rows of `x.reshape([n·c, h·w])`.
fn per_row<B: Backend>(v: Tensor<B, 1>, n: usize) -> Tensor<B, 2> {
    let c = v.dims()[0];
    v.reshape([1, c]).expand([n, c]).reshape([n * c, 1])
}

impl<B: Backend> BatchNorm<B> {
    /// Normalises with batch statistics under autodiff (training), with the running
    /// statistics otherwise (`model.valid()`), as burn's own layer decides, or always with
    /// the running statistics when [`BatchNorm::use_running_stats`] is set.
    ///
    /// # Shapes
    /// - input `[batch, channels, height, width]` -> same
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [n, c, h, w] = x.dims();
        let x2 = x.reshape([n * c, h * w]);
        let (shift_rows, scale_rows) = if B::ad_enabled(&x2.device()) && !self.use_running_stats {
            let count = (n * h * w) as f64;
            // Per-channel mean: sum over pixels (rows), then over the batch.
            let mean = x2
                .clone()
                .sum_dim(1)
                .reshape([n, c])
                .sum_dim(0)
                .reshape([c])
                .div_scalar(count);
            let centred = x2.clone() - per_row(mean.clone(), n);
            let var = centred
                .clone()
                .powi_scalar(2)
                .sum_dim(1)
                .reshape([n, c])
                .sum_dim(0)
                .reshape([c])
                .div_scalar(count);
            let unbiased = if count > 1.0 {
                count / (count - 1.0)
            } else {
                1.0
            };
            let m = self.momentum;
            let rm = self.running_mean.value_sync().to_device(&mean.device());
            let rv = self.running_var.value_sync().to_device(&mean.device());
            self.running_mean.update(
                rm.mul_scalar(1.0 - m)
                    .add(mean.clone().detach().mul_scalar(m))
                    .detach(),
            );
            self.running_var.update(
                rv.mul_scalar(1.0 - m)
                    .add(var.clone().detach().mul_scalar(m * unbiased))
                    .detach(),
            );
            let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
            let y = centred * per_row(scale, n) + per_row(self.beta.val(), n);
            return y.reshape([n, c, h, w]);
        } else {
            let mean = self.running_mean.value().to_device(&x2.device());
            let var = self.running_var.value().to_device(&x2.device());
            let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
            let shift = self.beta.val() - mean * scale.clone();
            (per_row(shift, n), per_row(scale, n))
        };
        (x2 * scale_rows + shift_rows).reshape([n, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;
    use burn::tensor::Tolerance;

    #[test]
    fn matches_pytorch_batchnorm2d() {
        // Reference (torch 2.x):
        //   x = torch.arange(2*3*2*2, dtype=torch.float32).reshape(2,3,2,2).sin()*3
        //   bn = torch.nn.BatchNorm2d(3); bn.weight.data = torch.tensor([1.,2.,.5])
        //   bn.bias.data = torch.tensor([0.,1.,-1.]); y = bn(x)   # training mode
        //   y[0,:,0,0] -> [0.0010, 1.9512, -1.1928]; bn.running_mean, bn.running_var
        //   running_mean = [0.0142, -0.0052, 0.0193]; running_var = [1.3958, 1.2883, 1.4124]
        // (values recomputed below from the formula in f64, see `expected`.)
        type B = Autodiff<Flex>;
        let dev = Default::default();
        let vals: Vec<f32> = (0..24).map(|i| (i as f32).sin() * 3.0).collect();
        let x = Tensor::<B, 4>::from_data(TensorData::new(vals.clone(), [2, 3, 2, 2]), &dev);
        let mut bn = BatchNormConfig::new(3).init::<B>(&dev);
        bn.gamma = Param::from_tensor(Tensor::from_floats([1.0, 2.0, 0.5], &dev));
        bn.beta = Param::from_tensor(Tensor::from_floats([0.0, 1.0, -1.0], &dev));
        let y = bn.forward(x);
        // Independent f64 computation of BatchNorm2d's definition.
        let (gamma, beta) = ([1.0, 2.0, 0.5], [0.0, 1.0, -1.0]);
        let mut expected = vec![0f64; 24];
        let mut rmean = [0f64; 3];
        let mut rvar = [0f64; 3];
        for ch in 0..3 {
            let xs: Vec<f64> = (0..2)
                .flat_map(|b| (0..4).map(move |p| (b, p)))
                .map(|(b, p)| vals[b * 12 + ch * 4 + p] as f64)
                .collect();
            let m = xs.iter().sum::<f64>() / 8.0;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 8.0;
            rmean[ch] = 0.1 * m;
            rvar[ch] = 0.9 + 0.1 * v * 8.0 / 7.0;
            for b in 0..2 {
                for p in 0..4 {
                    let i = b * 12 + ch * 4 + p;
                    expected[i] = (vals[i] as f64 - m) / (v + 1e-5).sqrt() * gamma[ch] + beta[ch];
                }
            }
        }
        y.into_data().assert_approx_eq::<f32>(
            &TensorData::new(expected, [2, 3, 2, 2]),
            Tolerance::rel_abs(1e-5, 1e-5),
        );
        bn.running_mean
            .value_sync()
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(rmean.to_vec(), [3]),
                Tolerance::rel_abs(1e-5, 1e-6),
            );
        bn.running_var
            .value_sync()
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::new(rvar.to_vec(), [3]),
                Tolerance::rel_abs(1e-5, 1e-6),
            );
        // Inference uses the running statistics.
        let inner = bn.valid();
        let xi = Tensor::<Flex, 4>::from_data(TensorData::new(vals.clone(), [2, 3, 2, 2]), &dev);
        let yi = inner.forward(xi).into_data().to_vec::<f32>().unwrap();
        let want = (vals[0] as f64 - rmean[0]) / (rvar[0] + 1e-5).sqrt() * gamma[0] + beta[0];
        assert!((yi[0] as f64 - want).abs() < 1e-5, "{} vs {want}", yi[0]);
    }

    /// With `use_running_stats`, autodiff inference normalises with the running statistics
    /// and leaves them alone, and the input gradient of `sum(y)` is `gamma / sqrt(var + eps)`
    /// per channel (by hand: running variances 1, 4, 0.25 give 0.999995, 0.4999988,
    /// 1.99998).
    #[test]
    fn running_stats_under_autodiff() {
        type B = Autodiff<Flex>;
        let dev = Default::default();
        let mut bn = BatchNormConfig::new(3).init::<B>(&dev);
        bn.running_mean = RunningState::new(Tensor::from_floats([0.5, -1.0, 2.0], &dev));
        bn.running_var = RunningState::new(Tensor::from_floats([1.0, 4.0, 0.25], &dev));
        bn.use_running_stats = true;
        let vals: Vec<f32> = (0..24).map(|i| (i as f32).cos() * 2.0).collect();
        let x = Tensor::<B, 4>::from_data(TensorData::new(vals.clone(), [2, 3, 2, 2]), &dev)
            .require_grad();
        let y = bn.forward(x.clone());
        let yv = y.clone().into_data().to_vec::<f32>().unwrap();
        let grads = y.sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        let (mean, var) = ([0.5f64, -1.0, 2.0], [1.0f64, 4.0, 0.25]);
        for (i, (&v, (&out, &gi))) in vals.iter().zip(yv.iter().zip(&g)).enumerate() {
            let c = (i / 4) % 3;
            let scale = 1.0 / (var[c] + 1e-5).sqrt();
            assert!(
                (out as f64 - (v as f64 - mean[c]) * scale).abs() < 1e-5,
                "y[{i}]"
            );
            assert!(
                (gi as f64 - scale).abs() < 1e-5,
                "grad[{i}] = {gi}, want {scale}"
            );
        }
        let rm = bn
            .running_mean
            .value_sync()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(rm, vec![0.5, -1.0, 2.0], "running mean must not move");
    }
}
