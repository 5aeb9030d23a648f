//! Detectors by name: the `name:key=value,...` specs of `eval.detectors`, what `"all"`
//! runs, and the hyper-parameter sweep lists of a search.

use super::{
    Ash, CeUniform, Detector, Dice, Energy, Fdbd, Gen, Gmm, Knn, MaxLogit, Mds, MdsEnsemble, Msp,
    Mvg, NnGuide, Odin, ProbMargin, ProbRatio, React, Rmds, Scale, She, TempScale, Vim,
};
use crate::error::{EvalError, Result};

/// The names [`detector_from_name`] accepts, with their parameters.
pub const KNOWN_DETECTORS: &str = "msp, maxlogit, energy[:T=<temperature > 0>], \
     temp_scale, odin[:T=1000,noise=0.0014], gen[:gamma=0.1,M=100], mds, \
     mds_ensemble[:noise=0.0014,layer=<index; all layers when absent>], rmds, mvg[:npca=<fraction of variance in (0, 1)>], \
     gmm[:components=3,iters=100,reg=1e-6], knn[:k=50,subsample=1], nnguide[:k=100,subsample=1], \
     vim[:dim=<D/2>], react[:p=90], ash[:p=90], scale[:p=85], she, fdbd[:distance=1], dice[:p=90], \
     ce_uniform, ratio, margin";

/// The detectors `eval.detectors = ["all"]` expands to, in report order (OpenOOD v1.5's
/// defaults; ProtoGCD's `ce_uniform`/`ratio`/`margin` are left to be named explicitly).
pub const ALL_DETECTORS: &[&str] = &[
    "msp",
    "maxlogit",
    "energy",
    "temp_scale",
    "odin",
    "gen",
    "mds",
    "mds_ensemble",
    "rmds",
    "mvg",
    "gmm",
    "knn",
    "nnguide",
    "vim",
    "react",
    "ash",
    "scale",
    "she",
    "fdbd",
    "dice",
];

/// The hyper-parameter candidates of detector `name` (a bare name, no parameters) for a
/// search on validation sets: OpenOOD v1.5's sweep lists (`configs/postprocessors/*.yml`,
/// `postprocessor_sweep` of the detectors with `APS_mode: True`), as specs for
/// [`detector_from_name`], the default first. `knn`: `k` in 50, 100, 200, 500, 1000;
/// `react`: `p` in 85, 90, 95, 99; `ash`, `scale`: `p` in 65, 70, ..., 95; `vim`: `dim` in
/// 256, 1000 where below the feature dimension `dim` (else the default `D/2` alone); `gen`:
/// `gamma` in 0.01, 0.1, 0.5, 1, 2, 5, 10 times `M` in 10, 50, 100, 200, 500, 1000; `odin`:
/// `T` in 1, 10, 100, 1000 times `noise` in 0.0014, 0.0028 (the ODIN paper's range);
/// `mds_ensemble`: `noise` in 0, 0.0005, 0.001, 0.0014, 0.002, 0.005, 0.01 (Lee et al.'s
/// list), its layer weights fitted on the same validation sets; `fdbd`: the distance to the
/// training mean or the feature norm as normaliser. Any other
/// detector has no sweep: the one-element list of its name.
pub fn search_grid(name: &str, dim: usize) -> Vec<String> {
    let with = |key: &str, values: &[f64]| -> Vec<String> {
        values.iter().map(|v| format!("{name}:{key}={v}")).collect()
    };
    let grid = match name {
        "knn" => with("k", &[50.0, 100.0, 200.0, 500.0, 1000.0]),
        "react" => with("p", &[90.0, 85.0, 95.0, 99.0]),
        "ash" => with("p", &[90.0, 65.0, 70.0, 75.0, 80.0, 85.0, 95.0]),
        "scale" => with("p", &[85.0, 65.0, 70.0, 75.0, 80.0, 90.0, 95.0]),
        "vim" => with("dim", &[256.0, 1000.0])
            .into_iter()
            .zip([256usize, 1000])
            .filter(|(_, d)| *d < dim)
            .map(|(s, _)| s)
            .collect(),
        "fdbd" => vec!["fdbd".to_string(), "fdbd:distance=0".to_string()],
        "mds_ensemble" => with("noise", &[0.0014, 0.0, 0.0005, 0.001, 0.002, 0.005, 0.01]),
        "odin" => {
            let mut v = Vec::new();
            for t in [1000.0, 1.0, 10.0, 100.0] {
                for noise in [0.0014, 0.0028] {
                    v.push(format!("odin:T={t},noise={noise}"));
                }
            }
            v
        }
        "gen" => {
            let mut v = Vec::new();
            for gamma in [0.1, 0.01, 0.5, 1.0, 2.0, 5.0, 10.0] {
                for m in [100, 10, 50, 200, 500, 1000] {
                    v.push(format!("gen:gamma={gamma},M={m}"));
                }
            }
            v
        }
        _ => Vec::new(),
    };
    if grid.is_empty() {
        vec![name.to_string()]
    } else {
        grid
    }
}

/// Builds a detector from its name, optionally with parameters after a colon:
/// `"msp"`, `"energy:T=2.0"`, `"knn:k=100"`, `"mvg:npca=0.99"`, … (every name and parameter
/// is listed in [`KNOWN_DETECTORS`]; defaults are OpenOOD v1.5's). Names are
/// case-insensitive; several parameters are separated by commas (`k=v,k2=v2`).
///
/// # Errors
/// [`EvalError::UnknownDetector`] listing [`KNOWN_DETECTORS`] for an unknown name;
/// [`EvalError::InvalidDetectorParameter`] for a malformed, unknown, repeated or
/// out-of-range parameter.
pub fn detector_from_name(spec: &str) -> Result<Box<dyn Detector>> {
    let trimmed = spec.trim();
    let (name, params) = match trimmed.split_once(':') {
        Some((name, params)) => (name.trim(), parse_params(spec, params)?),
        None => (trimmed, Vec::new()),
    };
    let mut p = Params {
        spec,
        name: name.to_ascii_lowercase(),
        pairs: params,
    };
    let det: Box<dyn Detector> = match p.name.as_str() {
        "msp" => Box::new(Msp),
        "maxlogit" => Box::new(MaxLogit),
        "ce_uniform" => Box::new(CeUniform),
        "ratio" => Box::new(ProbRatio),
        "margin" => Box::new(ProbMargin),
        "energy" => {
            let t = p.take(&["T", "t", "temperature"], 1.0, |v| v > 0.0, "> 0")?;
            Box::new(Energy::new(t as f32)?)
        }
        "temp_scale" => Box::new(TempScale::default()),
        "odin" => {
            let t = p.take(&["T", "t", "temperature"], 1000.0, |v| v > 0.0, "> 0")?;
            let noise = p.take(&["noise", "eps"], 0.0014, |v| v >= 0.0, ">= 0")?;
            Box::new(Odin::new(t as f32, noise as f32))
        }
        "gen" => {
            let gamma = p.take(&["gamma"], 0.1, |v| v > 0.0, "> 0")?;
            let m = p.take_usize("M", 100)?;
            Box::new(Gen::new(gamma, m))
        }
        "mds" => Box::new(Mds::default()),
        "mds_ensemble" => {
            let noise = p.take(&["noise", "eps"], 0.0014, |v| v >= 0.0, ">= 0")?;
            let layer = p.take_opt(
                "layer",
                |v| v >= 0.0 && v.fract() == 0.0,
                "a whole number >= 0",
            )?;
            Box::new(MdsEnsemble::new(noise as f32, layer.map(|v| v as usize)))
        }
        "rmds" => Box::new(Rmds::default()),
        "mvg" => {
            let npca = p.take_opt("npca", |v| v > 0.0 && v < 1.0, "in (0, 1)")?;
            Box::new(Mvg::new(npca))
        }
        "gmm" => {
            let components = p.take_usize("components", 3)?;
            let iters = p.take_usize("iters", 100)?;
            let reg = p.take(&["reg"], 1e-6, |v| v >= 0.0, ">= 0")?;
            Box::new(Gmm::new(components, iters, reg))
        }
        "knn" => {
            let k = p.take_usize("k", 50)?;
            let sub = p.take(&["subsample"], 1.0, |v| v > 0.0 && v <= 1.0, "in (0, 1]")?;
            Box::new(Knn::new(k, sub))
        }
        "nnguide" => {
            let k = p.take_usize("k", 100)?;
            let sub = p.take(&["subsample"], 1.0, |v| v > 0.0 && v <= 1.0, "in (0, 1]")?;
            Box::new(NnGuide::new(k, sub))
        }
        "vim" => {
            let dim = p.take_opt(
                "dim",
                |v| v >= 1.0 && v.fract() == 0.0,
                "a whole number >= 1",
            )?;
            Box::new(Vim::new(dim.map(|d| d as usize)))
        }
        "react" => Box::new(React::new(p.percentile(90.0)?)),
        "ash" => Box::new(Ash::new(p.percentile(90.0)?)),
        "scale" => Box::new(Scale::new(p.percentile(85.0)?)),
        "dice" => Box::new(Dice::new(p.percentile(90.0)?)),
        "she" => Box::new(She::default()),
        "fdbd" => {
            let distance = p.take(&["distance"], 1.0, |v| v == 0.0 || v == 1.0, "0 or 1")?;
            Box::new(Fdbd::new(distance == 1.0))
        }
        _ => {
            return Err(EvalError::UnknownDetector {
                name: spec.to_string(),
                known: KNOWN_DETECTORS.to_string(),
            })
        }
    };
    p.finish()?;
    Ok(det)
}

/// The parameters of one detector spec, taken one by one; [`Params::finish`] rejects the
/// ones nobody took.
struct Params<'a> {
    spec: &'a str,
    name: String,
    pairs: Vec<(&'a str, &'a str)>,
}

impl Params<'_> {
    fn invalid(&self, message: String) -> EvalError {
        EvalError::InvalidDetectorParameter {
            detector: self.spec.to_string(),
            message,
        }
    }

    /// The value of the first of `keys` present, checked by `ok`, else `None`.
    fn take_any(
        &mut self,
        keys: &[&str],
        ok: impl Fn(f64) -> bool,
        range: &str,
    ) -> Result<Option<f64>> {
        let Some(i) = self.pairs.iter().position(|(k, _)| keys.contains(k)) else {
            return Ok(None);
        };
        let (key, value) = self.pairs.remove(i);
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() && ok(v) => Ok(Some(v)),
            _ => Err(self.invalid(format!("`{key}` = `{value}` must be {range}"))),
        }
    }

    fn take(
        &mut self,
        keys: &[&str],
        default: f64,
        ok: impl Fn(f64) -> bool,
        range: &str,
    ) -> Result<f64> {
        Ok(self.take_any(keys, ok, range)?.unwrap_or(default))
    }

    fn take_opt(
        &mut self,
        key: &str,
        ok: impl Fn(f64) -> bool,
        range: &str,
    ) -> Result<Option<f64>> {
        self.take_any(&[key], ok, range)
    }

    fn take_usize(&mut self, key: &str, default: usize) -> Result<usize> {
        let v = self.take_any(
            &[key],
            |v| v >= 1.0 && v.fract() == 0.0,
            "a whole number >= 1",
        )?;
        Ok(v.map_or(default, |v| v as usize))
    }

    fn percentile(&mut self, default: f64) -> Result<f64> {
        self.take(
            &["p", "percentile"],
            default,
            |v| (0.0..100.0).contains(&v),
            "a percentile in [0, 100)",
        )
    }

    fn finish(self) -> Result<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((key, _)) => {
                let accepted = KNOWN_DETECTORS
                    .split(", ")
                    .find(|d| d.split('[').next() == Some(self.name.as_str()))
                    .unwrap_or(&self.name);
                Err(self.invalid(format!(
                    "unknown parameter `{key}`; `{}` accepts: {accepted}",
                    self.name
                )))
            }
        }
    }
}

/// Splits `k=v,k2=v2` into trimmed pairs; `spec` is the whole detector spec, for errors.
fn parse_params<'a>(spec: &str, params: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    let invalid = |message: String| EvalError::InvalidDetectorParameter {
        detector: spec.to_string(),
        message,
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for item in params.split(',') {
        let (key, value) = item
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "parameter `{}` is not of the form key=value",
                    item.trim()
                ))
            })?;
        if pairs.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("parameter `{key}` is given twice")));
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}
