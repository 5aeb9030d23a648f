//! Detectors that move their input against a loss gradient before scoring it: ODIN and Lee
//! et al.'s multi-layer Mahalanobis ensemble. They define the loss on the network's
//! outputs ([`Detector::output_gradient`]) and the score of the moved input
//! ([`Detector::score_passes`]); the caller runs the network and the backward pass
//! ([`super::Perturbation`] states the step).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, Par};

use super::gaussian::{fit_class_gaussians, ClassGaussians};
use super::linalg::{check_features, logistic_regression};
use super::logit::{score_rows, softmax, with_params};
use super::{
    validate_rows, Detector, FeatureBatch, FeatureSource, Head, Needs, OutputGradient, Outputs,
    Perturbation,
};
use crate::error::{EvalError, Result};

/// ODIN: temperature scaling plus input pre-processing. The input moves by `noise` against
/// the sign of the gradient of `CE(z / T, argmax z)` (towards a more confident prediction),
/// and the score is the MSP of the moved input's logits at temperature `T`:
/// `max_k softmax(z' / T)_k`.
///
/// Liang, Li & Srikant, "Enhancing The Reliability of Out-of-distribution Image Detection in
/// Neural Networks", ICLR 2018; OpenOOD `odin_postprocessor.py` (`T = 1000`,
/// `noise = 0.0014`, the gradient's sign divided by the normalisation's std per channel).
/// With `noise = 0` it is MSP at temperature `T`, computed on the cached logits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Odin {
    /// Temperature `T > 0` (default 1000).
    pub temperature: f32,
    /// Step size in the `[0, 1]` pixel range (default 0.0014).
    pub noise: f32,
}

impl Odin {
    /// An ODIN detector.
    pub fn new(temperature: f32, noise: f32) -> Self {
        Self { temperature, noise }
    }
}

impl Default for Odin {
    fn default() -> Self {
        Self::new(1000.0, 0.0014)
    }
}

impl Detector for Odin {
    fn name(&self) -> String {
        let mut params = Vec::new();
        if self.temperature != 1000.0 {
            params.push(format!("T={}", self.temperature));
        }
        if self.noise != 0.0014 {
            params.push(format!("noise={}", self.noise));
        }
        with_params("odin", &params)
    }

    fn perturbation(&self) -> Option<Perturbation> {
        (self.noise > 0.0).then_some(Perturbation {
            noise: self.noise,
            passes: 1,
        })
    }

    /// `∂/∂z` of the batch mean of `CE(z / T, ŷ)` with `ŷ = argmax z` (the first maximum):
    /// `(softmax(z / T) − onehot(ŷ)) / (T · n)`.
    fn output_gradient(&self, _pass: usize, clean: Outputs<'_>) -> Result<OutputGradient> {
        let k = clean.num_classes;
        let n = validate_rows("logits", clean.logits, k)?;
        let t = f64::from(self.temperature);
        let mut g = Vec::with_capacity(n * k);
        for row in clean.logits.chunks_exact(k) {
            let mut top = 0;
            for (j, &z) in row.iter().enumerate() {
                if z > row[top] {
                    top = j;
                }
            }
            for (j, p) in softmax(row, t).into_iter().enumerate() {
                let target = if j == top { 1.0 } else { 0.0 };
                g.push(((p - target) / (t * n as f64)) as f32);
            }
        }
        Ok(OutputGradient {
            logits: g,
            features: Vec::new(),
        })
    }

    fn score(&self, logits: &[f32], num_classes: usize, _: Option<&[f32]>) -> Result<Vec<f32>> {
        let t = f64::from(self.temperature);
        score_rows(logits, num_classes, |row| {
            softmax(row, t).into_iter().fold(0.0, f64::max) as f32
        })
    }
}

/// Lee et al.'s Mahalanobis detector in full: class-conditional Gaussians with a shared
/// covariance fitted on several layers' spatially averaged outputs, each scored on an input
/// moved by `noise` against the gradient of its own Mahalanobis distance to the closest class
/// mean, and the layers' scores summed: `Σ_l max_c −½ (z_l − μ_lc)ᵀ Σ_l⁺ (z_l − μ_lc)`, `z_l`
/// the layer's output for the moved input.
///
/// The layers are the network's pooled intermediate outputs (ResNet: the stem and the four
/// stages, the last being the penultimate features; WideResNet: the first convolution, the
/// first two stages and the penultimate features); `layer=i` keeps one of them (OpenOOD's
/// `mds_ensemble.yml` uses its first, `feature_type_list: [mean]`). The layers carry weight
/// 1 unless validation data fits them ([`Detector::fit_weights`]): Lee et al.'s logistic
/// regression of ID (1) against OOD (0) on the layers' scores, whose coefficients become the
/// weights (scikit-learn's `LogisticRegression(C=1)` objective; Lee et al. and OpenOOD
/// cross-validate `C`).
///
/// Lee, Lee, Lee & Shin, "A Simple Unified Framework for Detecting Out-of-Distribution
/// Samples and Adversarial Attacks", NeurIPS 2018; OpenOOD `mds_ensemble_postprocessor.py`,
/// which divides the gradient's sign by 0.5 where this divides by the input normalisation's
/// std, as ODIN does (so `noise` is a step in the `[0, 1]` pixel range for both).
///
/// Fit: two streaming passes per layer over the training set; peak memory
/// `8·Σ_l (K·D_l + 3·D_l²)` bytes plus one batch.
#[derive(Debug, Clone, Default)]
pub struct MdsEnsemble {
    noise: f32,
    layer: Option<usize>,
    widths: Vec<usize>,
    fitted: Vec<(usize, ClassGaussians)>,
    weights: Option<Vec<f64>>,
}

impl MdsEnsemble {
    /// The detector with input step `noise` on every layer (`layer = None`) or on one.
    pub fn new(noise: f32, layer: Option<usize>) -> Self {
        Self {
            noise,
            layer,
            widths: Vec::new(),
            fitted: Vec::new(),
            weights: None,
        }
    }

    /// Column offset of layer `l` in the side-by-side features.
    fn offset(&self, l: usize) -> usize {
        self.widths[..l].iter().sum()
    }

    fn total(&self) -> usize {
        self.widths.iter().sum()
    }

    fn fitted_layers(&self) -> Result<&[(usize, ClassGaussians)]> {
        if self.fitted.is_empty() {
            return Err(EvalError::NotFitted {
                detector: self.name(),
            });
        }
        Ok(&self.fitted)
    }

    /// Layer `l`'s columns of `features` (`n` rows of all layers), contiguous.
    fn slice(&self, l: usize, features: &[f32]) -> Vec<f32> {
        let (start, w, total) = (self.offset(l), self.widths[l], self.total());
        features
            .chunks_exact(total)
            .flat_map(|r| r[start..start + w].iter().copied())
            .collect()
    }

    /// `max_c −½ distance` per row of layer `l`'s slice, and the closest class.
    fn layer_scores(&self, l: usize, g: &ClassGaussians, z: &[f32]) -> (Vec<f64>, Vec<usize>) {
        let k = g.means.len();
        let n = z.len() / self.widths[l];
        let neg = g.neg_distances(z, n);
        let mut scores = Vec::with_capacity(n);
        let mut closest = Vec::with_capacity(n);
        for row in neg.chunks_exact(k) {
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            scores.push(0.5 * row[best]);
            closest.push(best);
        }
        (scores, closest)
    }

    /// Each fitted layer's scores: pass `p`'s features give layer `fitted[p]`'s, or one
    /// pass gives every layer's.
    fn per_layer(&self, passes: &[Outputs<'_>]) -> Result<Vec<Vec<f64>>> {
        let fitted = self.fitted_layers()?;
        if passes.len() != fitted.len() && passes.len() != 1 {
            return Err(EvalError::LengthMismatch {
                what: "perturbed passes vs fitted layers",
                left: passes.len(),
                right: fitted.len(),
            });
        }
        let mut out = Vec::with_capacity(fitted.len());
        for (p, (l, g)) in fitted.iter().enumerate() {
            let pass = &passes[p.min(passes.len() - 1)];
            let (f, _) = check_features("mds_ensemble", Some(pass.features), self.total())?;
            out.push(self.layer_scores(*l, g, &self.slice(*l, f)).0);
        }
        Ok(out)
    }

    /// The layers' weighted sum.
    fn summed(&self, passes: &[Outputs<'_>]) -> Result<Vec<f32>> {
        let layers = self.per_layer(passes)?;
        let n = layers.first().map_or(0, Vec::len);
        Ok((0..n)
            .map(|i| {
                layers
                    .iter()
                    .enumerate()
                    .map(|(l, s)| self.weights.as_ref().map_or(1.0, |w| w[l]) * s[i])
                    .sum::<f64>() as f32
            })
            .collect())
    }
}

/// One layer's columns of a side-by-side source.
struct LayerSlice<'s> {
    inner: &'s mut dyn FeatureSource,
    start: usize,
    width: usize,
}

impl FeatureSource for LayerSlice<'_> {
    fn dim(&self) -> usize {
        self.width
    }

    fn for_each_batch(
        &mut self,
        visit: &mut dyn FnMut(FeatureBatch<'_>) -> Result<()>,
    ) -> Result<()> {
        let (start, width) = (self.start, self.width);
        let mut buf = Vec::new();
        self.inner.for_each_batch(&mut |b| {
            buf.clear();
            for row in b.features.chunks_exact(b.dim) {
                buf.extend_from_slice(&row[start..start + width]);
            }
            visit(FeatureBatch {
                features: &buf,
                dim: width,
                ..b
            })
        })
    }
}

impl Detector for MdsEnsemble {
    fn name(&self) -> String {
        let mut params = Vec::new();
        if self.noise != 0.0014 {
            params.push(format!("noise={}", self.noise));
        }
        if let Some(l) = self.layer {
            params.push(format!("layer={l}"));
        }
        with_params("mds_ensemble", &params)
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            labels: true,
            layers: true,
            ..Needs::LOGITS
        }
    }

    fn set_layers(&mut self, widths: &[usize]) -> Result<()> {
        if widths.is_empty() || widths.contains(&0) {
            return Err(EvalError::Unsupported {
                detector: self.name(),
                reason: format!("layer widths {widths:?} must be non-empty and positive"),
            });
        }
        if let Some(l) = self.layer.filter(|&l| l >= widths.len()) {
            return Err(EvalError::Unsupported {
                detector: self.name(),
                reason: format!(
                    "`layer={l}` is past the network's last pooled layer ({} layers, 0 to {})",
                    widths.len(),
                    widths.len() - 1
                ),
            });
        }
        self.widths = widths.to_vec();
        self.fitted.clear();
        Ok(())
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        if self.widths.is_empty() {
            return Err(EvalError::Unsupported {
                detector: self.name(),
                reason: "it needs the widths of the network's layers (`set_layers`)".into(),
            });
        }
        if train.dim() != self.total() {
            return Err(EvalError::LengthMismatch {
                what: "training feature width vs the layers' widths summed",
                left: train.dim(),
                right: self.total(),
            });
        }
        let layers: Vec<usize> = match self.layer {
            Some(l) => vec![l],
            None => (0..self.widths.len()).collect(),
        };
        let mut fitted = Vec::with_capacity(layers.len());
        for l in layers {
            let mut slice = LayerSlice {
                inner: &mut *train,
                start: self.offset(l),
                width: self.widths[l],
            };
            let (g, _) = fit_class_gaussians("mds_ensemble", &mut slice, head, false)?;
            fitted.push((l, g));
        }
        self.fitted = fitted;
        self.weights = None;
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> = self
            .fitted
            .iter()
            .map(|(l, g)| (format!("layer{l}_dim"), g.precision.nrows() as f64))
            .collect();
        if let Some(w) = &self.weights {
            for ((l, _), w) in self.fitted.iter().zip(w) {
                out.push((format!("layer{l}_weight"), *w));
            }
        }
        out
    }

    fn num_components(&self) -> usize {
        if self.fitted.len() > 1 {
            self.fitted.len()
        } else {
            0
        }
    }

    fn components(&self, passes: &[Outputs<'_>]) -> Result<Vec<f32>> {
        let layers = self.per_layer(passes)?;
        let n = layers.first().map_or(0, Vec::len);
        Ok((0..n)
            .flat_map(|i| layers.iter().map(move |s| s[i] as f32))
            .collect())
    }

    fn fit_weights(&mut self, id: &[f32], ood: &[f32]) -> Result<()> {
        let d = self.fitted_layers()?.len();
        let (n_id, n_ood) = (
            validate_rows("ID validation components", id, d)?,
            validate_rows("OOD validation components", ood, d)?,
        );
        if n_id == 0 || n_ood == 0 {
            return Err(EvalError::Unsupported {
                detector: self.name(),
                reason: "fitting the layer weights needs ID and OOD validation images".into(),
            });
        }
        let x: Vec<f64> = id.iter().chain(ood).map(|&v| f64::from(v)).collect();
        let positive: Vec<bool> = (0..n_id + n_ood).map(|i| i < n_id).collect();
        let (w, _) = logistic_regression("mds_ensemble", &x, &positive, d)?;
        self.weights = Some(w);
        Ok(())
    }

    fn perturbation(&self) -> Option<Perturbation> {
        (self.noise > 0.0).then_some(Perturbation {
            noise: self.noise,
            passes: self.fitted.len().max(1),
        })
    }

    /// Pass `p` (the `p`-th fitted layer `l`): `∂/∂z_l` of the batch mean of
    /// `½ (z_l − μ_lĉ)ᵀ Σ_l⁺ (z_l − μ_lĉ)`, `ĉ` the closest class: `Σ_l⁺ (z_l − μ_lĉ) / n`
    /// in layer `l`'s columns, zero elsewhere.
    fn output_gradient(&self, pass: usize, clean: Outputs<'_>) -> Result<OutputGradient> {
        let fitted = self.fitted_layers()?;
        let (l, g) = fitted.get(pass).ok_or_else(|| EvalError::Unsupported {
            detector: self.name(),
            reason: format!("pass {pass} of {}", fitted.len()),
        })?;
        let total = self.total();
        let (f, n) = check_features("mds_ensemble", Some(clean.features), total)?;
        let z = self.slice(*l, f);
        let w = self.widths[*l];
        let (_, closest) = self.layer_scores(*l, g, &z);
        let diff = Mat::from_fn(n, w, |i, j| {
            f64::from(z[i * w + j]) - g.means[closest[i]][j]
        });
        // Σ⁺ is symmetric: the rows of diff · Σ⁺ are (Σ⁺ diffᵢ)ᵀ.
        let mut pd = Mat::<f64>::zeros(n, w);
        matmul(
            pd.as_mut(),
            Accum::Replace,
            diff.as_ref(),
            g.precision.as_ref(),
            1.0 / n as f64,
            Par::Seq,
        );
        let start = self.offset(*l);
        let mut out = vec![0f32; n * total];
        for i in 0..n {
            for j in 0..w {
                out[i * total + start + j] = pd[(i, j)] as f32;
            }
        }
        Ok(OutputGradient {
            logits: Vec::new(),
            features: out,
        })
    }

    fn score_passes(&self, passes: &[Outputs<'_>]) -> Result<Vec<f32>> {
        self.summed(passes)
    }

    fn score(&self, logits: &[f32], k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let features = features.ok_or_else(|| EvalError::MissingFeatures {
            detector: self.name(),
        })?;
        self.summed(&[Outputs {
            logits,
            num_classes: k,
            features,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::{detector_from_name, Features};

    /// ODIN's gradient by hand: logits (2, 0) at T = 1 give softmax (0.8808, 0.1192),
    /// argmax 0, so the batch-mean CE gradient for one row is (−0.1192, 0.1192); the
    /// score is the MSP at T.
    #[test]
    fn odin_gradient_and_score_by_hand() {
        let d = Odin::new(1.0, 0.001);
        let g = d
            .output_gradient(
                0,
                Outputs {
                    logits: &[2.0, 0.0],
                    num_classes: 2,
                    features: &[],
                },
            )
            .unwrap();
        let p1 = 1.0 / (1.0 + (-2f64).exp());
        assert!(
            (f64::from(g.logits[0]) + (1.0 - p1)).abs() < 1e-6,
            "{:?}",
            g.logits
        );
        assert!((f64::from(g.logits[1]) - (1.0 - p1)).abs() < 1e-6);
        let s = d.score(&[2.0, 0.0], 2, None).unwrap();
        assert!((f64::from(s[0]) - p1).abs() < 1e-6);
        // T = 1000 flattens the softmax: MSP = 1 / (1 + e^(−0.002)).
        let s = Odin::default().score(&[2.0, 0.0], 2, None).unwrap();
        assert!((f64::from(s[0]) - 1.0 / (1.0 + (-0.002f64).exp())).abs() < 1e-6);
        assert_eq!(Odin::default().name(), "odin");
        assert_eq!(
            detector_from_name("odin:T=10,noise=0").unwrap().name(),
            "odin:T=10,noise=0"
        );
        assert!(detector_from_name("odin:noise=0")
            .unwrap()
            .perturbation()
            .is_none());
    }

    /// Two layers of widths 1 and 2, two classes. Layer 0: class means 0 and 4 with
    /// within-class variance 1 (samples −1, 1 | 3, 5); layer 1: identity-like. The score of
    /// a point is the sum over layers of −½ the squared distance to the closest mean scaled
    /// by the precision; the gradient is Σ⁺(z − μ)/n in the layer's columns only.
    #[test]
    fn mds_ensemble_scores_and_gradient_by_hand() {
        // rows: [layer0 | layer1 (2 values)]
        let feats = vec![
            -1.0, 0.0, 1.0, //
            1.0, 0.0, -1.0, //
            3.0, 1.0, 0.0, //
            5.0, -1.0, 0.0,
        ];
        let mut src = Features::new(feats, 3)
            .unwrap()
            .with_labels(vec![0, 0, 1, 1])
            .unwrap();
        let mut d = MdsEnsemble::new(0.001, None);
        assert!(d.fit(&mut src, None).is_err(), "widths are required");
        d.set_layers(&[1, 2]).unwrap();
        d.fit(&mut src, None).unwrap();
        // Layer 0: within-class variance ((−1)²+1²+(−1)²+1²)/4 = 1, so P = 1.
        // Layer 1: class-0 rows (0,1),(0,−1) mean (0,0); class-1 (1,0),(−1,0) mean (0,0);
        // covariance diag(0.5, 0.5), P = diag(2, 2).
        // Query [2, 1, 1]: layer 0 distances to 0 and 4 are both 4 -> −½·4 = −2;
        // layer 1: 2·(1 + 1) = 4 -> −2. Sum −4.
        let s = d.score(&[], 0, Some(&[2.0, 1.0, 1.0])).unwrap();
        assert!((s[0] + 4.0).abs() < 1e-5, "{s:?}");
        let clean = Outputs {
            logits: &[],
            num_classes: 0,
            features: &[0.5, 1.0, 1.0, 4.5, 0.0, 0.0],
        };
        let g0 = d.output_gradient(0, clean).unwrap();
        // Row 0 closest to μ = 0: (0.5 − 0)·1/2 = 0.25; row 1 closest to 4: 0.5/2 = 0.25.
        let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(
            close(&g0.features, &[0.25, 0.0, 0.0, 0.25, 0.0, 0.0]),
            "{g0:?}"
        );
        let g1 = d.output_gradient(1, clean).unwrap();
        // Layer 1, row 0: P·(1, 1)/2 = (1, 1); row 1: (0, 0).
        assert!(
            close(&g1.features, &[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
            "{g1:?}"
        );
        assert_eq!(d.perturbation().unwrap().passes, 2);
        // Scoring the passes: pass 0 reads layer 0, pass 1 layer 1.
        let a = [2.0, 9.0, 9.0];
        let b = [0.0, 1.0, 1.0];
        let s = d
            .score_passes(&[
                Outputs {
                    logits: &[],
                    num_classes: 0,
                    features: &a,
                },
                Outputs {
                    logits: &[],
                    num_classes: 0,
                    features: &b,
                },
            ])
            .unwrap();
        assert!((s[0] + 4.0).abs() < 1e-5, "{s:?}");
        // Weights from validation scores: layer 1 separates ID from OOD, layer 0 does not,
        // so layer 1 gets the larger weight, and the components are the per-layer scores.
        assert_eq!(d.num_components(), 2);
        let comps = d
            .components(&[Outputs {
                logits: &[],
                num_classes: 0,
                features: &[2.0, 1.0, 1.0],
            }])
            .unwrap();
        assert!(
            (comps[0] + 2.0).abs() < 1e-5 && (comps[1] + 2.0).abs() < 1e-5,
            "{comps:?}"
        );
        let id = [-1.0, -0.5, -2.0, -0.4, -1.5, -0.6, -1.0, -0.3];
        let ood = [-1.2, -3.0, -1.8, -2.5, -1.1, -3.5, -1.6, -2.8];
        d.fit_weights(&id, &ood).unwrap();
        let f = d.fitted();
        let w = |k: &str| f.iter().find(|(n, _)| n == k).unwrap().1;
        assert!(w("layer1_weight") > w("layer0_weight").abs(), "{f:?}");
        d.fit(&mut src, None).unwrap();
        assert!(
            d.fitted().iter().all(|(n, _)| !n.ends_with("_weight")),
            "a refit drops them"
        );
        // One layer only.
        let mut one = MdsEnsemble::new(0.0, Some(1));
        assert!(one.set_layers(&[1]).is_err());
        one.set_layers(&[1, 2]).unwrap();
        one.fit(&mut src, None).unwrap();
        assert!(one.perturbation().is_none());
        assert_eq!(one.num_components(), 0, "one layer has no weights to fit");
        let s = one.score(&[], 0, Some(&[2.0, 1.0, 1.0])).unwrap();
        assert!((s[0] + 2.0).abs() < 1e-5, "{s:?}");
        assert_eq!(one.name(), "mds_ensemble:noise=0,layer=1");
    }
}
