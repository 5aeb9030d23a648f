//! Post-hoc detectors on a trained network: `eval.detectors` expanded (`"all"` = every
//! detector the network supports), the network's linear head read out for the detectors
//! that need it, the ID training features computed once through the one inference path,
//! and every detector fitted on them.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use unseen_backbones::Backbone;
use unseen_data::ImageSet;
use unseen_eval::detectors::{
    detector_from_name, Detector, FeatureSource, Features, Head, ALL_DETECTORS,
};

use crate::config::ExperimentConfig;
use crate::run::feature_cache::{self, FileFeatures};
use crate::run::infer::{check_finite, infer, network_outputs, Rows};

/// A detector ready to score, with what its fit chose and how long the fit took.
pub struct FittedDetector {
    /// The detector.
    pub detector: Box<dyn Detector>,
    /// Values the fit chose (`Detector::fitted`).
    pub fitted: Vec<(String, f64)>,
    /// Seconds spent in `fit` (0 for logit-only detectors).
    pub fit_seconds: f64,
}

/// `eval.detectors` with `"all"` replaced by every detector of [`ALL_DETECTORS`] that a
/// network with (`has_head`) or without a linear head, and with (`has_layers`) or without
/// pooled intermediate layers, can run; duplicates removed (first occurrence kept).
pub fn expand(specs: &[String], has_head: bool, has_layers: bool) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for spec in specs {
        if spec.trim().eq_ignore_ascii_case("all") {
            for name in ALL_DETECTORS {
                let d = detector_from_name(name)?;
                let needs = d.needs();
                let logits_ok = has_head || (!needs.head && !needs.train_logits && needs.features);
                let layers_ok = has_layers || !needs.layers;
                if logits_ok && layers_ok && !out.iter().any(|o| o == name) {
                    out.push((*name).to_string());
                }
            }
        } else if !out.iter().any(|o| o == spec) {
            out.push(spec.clone());
        }
    }
    Ok(out)
}

/// The network's linear head as `W [K, D]` (PyTorch's layout) and `b [K]`, `None` for a
/// headless network.
pub fn linear_head<B: Backend>(model: &Backbone<B>) -> Result<Option<Head>> {
    let Some(linear) = model.head_linear() else {
        return Ok(None);
    };
    // burn stores [in, out]; the detectors use PyTorch's [out, in].
    let w = linear.weight.val();
    let [d, k] = w.dims();
    let weight = w
        .transpose()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the head's weight: {e:?}"))?;
    let bias = match &linear.bias {
        Some(b) => b
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading the head's bias: {e:?}"))?,
        None => vec![0.0; k],
    };
    Ok(Some(
        Head::new(weight, bias, k, d).context("the network's linear head")?,
    ))
}

/// Builds every detector of `specs`, computes the ID training features (normalisation only,
/// the images `trainer embed --train-split` writes) if any detector needs a fit, and fits
/// them. A detector the network cannot run is an error naming why.
///
/// With `cache_dir`, the features are written to (or, for the same network and data,
/// read back from) [`feature_cache::FILE_NAME`] there and streamed from the file, so
/// memory stays bounded by what each detector keeps; without, they are held in memory.
pub fn fit_detectors<B: Backend>(
    model: &Backbone<B>,
    specs: &[String],
    cfg: &ExperimentConfig,
    train: &Arc<ImageSet>,
    cache_dir: Option<&Path>,
    device: &B::Device,
) -> Result<Vec<FittedDetector>> {
    let mut fitter = Fitter::new(model, cfg, train, cache_dir, device)?;
    fitter
        .expand(specs)?
        .iter()
        .map(|spec| fitter.fit(spec))
        .collect()
}

/// Fits detectors one at a time on one network's ID training features, computed (or read
/// from the cache) the first time a detector needs them and shared by the next ones.
pub struct Fitter<'a, B: Backend> {
    model: &'a Backbone<B>,
    cfg: &'a ExperimentConfig,
    train: &'a Arc<ImageSet>,
    cache_dir: Option<&'a Path>,
    device: &'a B::Device,
    head: Option<Head>,
    source: Option<Box<dyn FeatureSource>>,
    layers_source: Option<Box<dyn FeatureSource>>,
}

impl<'a, B: Backend> Fitter<'a, B> {
    /// A fitter for `model` (its head is read out now).
    ///
    /// # Errors
    /// A head whose parameters cannot be read.
    pub fn new(
        model: &'a Backbone<B>,
        cfg: &'a ExperimentConfig,
        train: &'a Arc<ImageSet>,
        cache_dir: Option<&'a Path>,
        device: &'a B::Device,
    ) -> Result<Self> {
        Ok(Self {
            head: linear_head(model)?,
            model,
            cfg,
            train,
            cache_dir,
            device,
            source: None,
            layers_source: None,
        })
    }

    /// `specs` with `"all"` expanded for this network ([`expand`]).
    ///
    /// # Errors
    /// An invalid detector name inside `ALL_DETECTORS` (a bug).
    pub fn expand(&self, specs: &[String]) -> Result<Vec<String>> {
        expand(
            specs,
            self.head.is_some(),
            self.model.layer_widths().is_some(),
        )
    }

    /// The network's feature dimension.
    pub fn feature_dim(&self) -> usize {
        self.model.feature_dim()
    }

    /// Builds and fits the detector `spec`.
    ///
    /// # Errors
    /// An unknown name, a detector the network cannot run, a failed fit.
    pub fn fit(&mut self, spec: &str) -> Result<FittedDetector> {
        let mut det =
            detector_from_name(spec).with_context(|| format!("`eval.detectors`: {spec:?}"))?;
        let needs = det.needs();
        let name = det.name();
        if needs.head && self.head.is_none() {
            bail!(
                "detector `{name}` cannot run on this network: it needs the network's linear \
                 head and `{}` has none (use `mvg`, `knn` or another feature detector)",
                self.cfg.model.name
            );
        }
        if needs.layers {
            let widths = self.model.layer_widths().with_context(|| {
                format!(
                    "detector `{name}` cannot run on this network: it needs pooled intermediate \
                     layers and `{}` is a Vision Transformer (use `mds` on its features)",
                    self.cfg.model.name
                )
            })?;
            det.set_layers(&widths)
                .with_context(|| format!("detector `{name}`"))?;
        }
        let started = Instant::now();
        if needs.fit {
            let slot = if needs.layers {
                &mut self.layers_source
            } else {
                &mut self.source
            };
            if slot.is_none() {
                let (model, cfg, train, device) = (self.model, self.cfg, self.train, self.device);
                *slot = Some(match self.cache_dir {
                    Some(dir) => {
                        let key = feature_cache::cache_key(model, cfg, needs.layers)?;
                        let (f, _reused) = FileFeatures::open_or_create(
                            dir,
                            &key,
                            model,
                            cfg,
                            train,
                            device,
                            needs.layers,
                        )?;
                        Box::new(f)
                    }
                    None => Box::new(train_features(model, cfg, train, device, needs.layers)?),
                });
            }
            let src = slot.as_mut().expect("computed above");
            det.fit(src.as_mut(), self.head.as_ref())
                .with_context(|| format!("fitting detector `{name}` on the ID training set"))?;
        }
        Ok(FittedDetector {
            fitted: det.fitted(),
            fit_seconds: if needs.fit {
                started.elapsed().as_secs_f64()
            } else {
                0.0
            },
            detector: det,
        })
    }
}

/// The ID training set's features (the pooled layers side by side with `layers`), logits
/// and labels as a detector's fitting source, in memory.
fn train_features<B: Backend>(
    model: &Backbone<B>,
    cfg: &ExperimentConfig,
    train: &Arc<ImageSet>,
    device: &B::Device,
    layers: bool,
) -> Result<Features> {
    let (mean, std) = (&cfg.data.augment.mean, &cfg.data.augment.std);
    let mut error = None;
    let mut rows = infer(train, mean, std, cfg.eval.batch_size, device, |x| {
        network_outputs(model, x, layers).unwrap_or_else(|e| {
            error.get_or_insert(e);
            Vec::new()
        })
    })
    .context("features of the ID training set")?;
    if let Some(e) = error {
        return Err(e.context("features of the ID training set"));
    }
    let l = if rows.len() > 1 {
        rows.pop().unwrap_or_default()
    } else {
        Rows::default()
    };
    let f = rows.pop().unwrap_or_default();
    check_finite("the feature", "the ID training set", &f)?;
    check_finite("the logit", "the ID training set", &l)?;
    let labels: Vec<usize> = train.labels.iter().map(|&y| y as usize).collect();
    let mut src = Features::new(f.values, f.width)?.with_labels(labels)?;
    if l.width > 0 {
        src = src.with_logits(l.values, l.width)?;
    }
    Ok(src)
}
