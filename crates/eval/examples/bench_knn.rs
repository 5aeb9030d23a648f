//! Times a feature detector's fit and scoring on seeded pseudo-random features, for
//! `scripts/bench_knn.sh` (which runs faiss / scikit-learn on the same data next to it).
//!
//! ```text
//! cargo run --release -p unseen-eval --example bench_knn -- \
//!     [--detector knn|nnguide|mds|<any spec>] [--n-train 50000] [--n-query 10000] \
//!     [--dim 512] [--k 50] [--classes 10] [--seed 1] [--repeat 3] [--data-dir DIR]
//! ```
//!
//! The data: `classes` class means `μ_c` with standard-normal-like components (a sum of
//! four uniforms, SplitMix64), features `max(0, μ_c + ε)` (post-ReLU, about 30 % zeros),
//! training labels `i mod classes`, logits `μ_c · x / √D` for the `c` of the 10 classes. With
//! `--data-dir`, the training features, queries (raw little-endian `f32`, row-major),
//! labels and logits are written there, and so are the scores (`scores_<detector>.f32`).
//! Prints one line of JSON: seconds (fit, and each scoring repeat, wall-clock and CPU time
//! of all threads), peak RSS (`VmHWM`) and the RSS before the fit.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use unseen_eval::detectors::{detector_from_name, Features};

struct Args {
    detector: String,
    n_train: usize,
    n_query: usize,
    dim: usize,
    k: usize,
    classes: usize,
    seed: u64,
    repeat: usize,
    data_dir: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        detector: "knn".into(),
        n_train: 50_000,
        n_query: 10_000,
        dim: 512,
        k: 50,
        classes: 10,
        seed: 1,
        repeat: 3,
        data_dir: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        let num = || {
            value
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--detector" => a.detector = value.clone(),
            "--n-train" => a.n_train = num(),
            "--n-query" => a.n_query = num(),
            "--dim" => a.dim = num(),
            "--k" => a.k = num(),
            "--classes" => a.classes = num(),
            "--seed" => a.seed = num() as u64,
            "--repeat" => a.repeat = num().max(1),
            "--data-dir" => a.data_dir = Some(PathBuf::from(value)),
            _ => panic!("unknown flag {flag}"),
        }
    }
    a
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Mean 0, variance 1: `(Σ of 4 uniforms − 2) · √3`.
    fn gaussish(&mut self) -> f32 {
        (self.uniform() + self.uniform() + self.uniform() + self.uniform() - 2.0) * 3f32.sqrt()
    }
}

/// Features of `n` rows, row `i` of class `labels[i]`.
fn features(rng: &mut Rng, means: &[f32], labels: &[usize], d: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(labels.len() * d);
    for &c in labels {
        let mu = &means[c * d..(c + 1) * d];
        out.extend(mu.iter().map(|&m| (m + rng.gaussish()).max(0.0)));
    }
    out
}

/// `logits[i][c] = μ_c · x_i / √D`.
fn logits(x: &[f32], means: &[f32], d: usize) -> Vec<f32> {
    let scale = 1.0 / (d as f64).sqrt();
    x.chunks_exact(d)
        .flat_map(|row| {
            means.chunks_exact(d).map(move |mu| {
                (row.iter()
                    .zip(mu)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum::<f64>()
                    * scale) as f32
            })
        })
        .collect()
}

fn write_f32(path: PathBuf, v: &[f32]) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create data file"));
    for x in v {
        f.write_all(&x.to_le_bytes()).expect("write data file");
    }
}

/// User + system CPU seconds of the whole process (all threads), from `/proc/self/stat`
/// (clock ticks, assumed 100 per second as on every Linux x86-64 / arm64 kernel).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name in parentheses, from the state (field 3) on:
    // utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

/// A line of `/proc/self/status` (e.g. `VmHWM`), in MiB.
fn proc_status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let a = parse_args();
    let d = a.dim;
    let mut rng = Rng(a.seed);
    let means: Vec<f32> = (0..a.classes * d).map(|_| rng.gaussish()).collect();
    let train_labels: Vec<usize> = (0..a.n_train).map(|i| i % a.classes).collect();
    let query_labels: Vec<usize> = (0..a.n_query)
        .map(|_| (rng.next_u64() % a.classes as u64) as usize)
        .collect();
    let t = Instant::now();
    let train = features(&mut rng, &means, &train_labels, d);
    let query = features(&mut rng, &means, &query_labels, d);
    let nnguide = a.detector.starts_with("nnguide");
    let (train_logits, query_logits) = if nnguide {
        (logits(&train, &means, d), logits(&query, &means, d))
    } else {
        (Vec::new(), vec![0.0; a.n_query])
    };
    let gen_s = t.elapsed().as_secs_f64();
    if let Some(dir) = &a.data_dir {
        std::fs::create_dir_all(dir).expect("create data dir");
        write_f32(dir.join("train.f32"), &train);
        write_f32(dir.join("query.f32"), &query);
        let labels: Vec<f32> = train_labels.iter().map(|&c| c as f32).collect();
        write_f32(dir.join("train_labels.f32"), &labels);
        if nnguide {
            write_f32(dir.join("train_logits.f32"), &train_logits);
            write_f32(dir.join("query_logits.f32"), &query_logits);
        }
    }
    let spec = match a.detector.as_str() {
        "knn" | "nnguide" => format!("{}:k={}", a.detector, a.k),
        other => other.to_string(),
    };
    let mut det = detector_from_name(&spec).expect("detector spec");
    let num_classes = if nnguide { a.classes } else { 1 };
    let mut source = Features::new(train, d)
        .expect("features")
        .with_labels(train_labels)
        .expect("labels");
    if nnguide {
        source = source.with_logits(train_logits, a.classes).expect("logits");
    }
    let rss_before_fit = proc_status_mib("VmRSS");
    let t = Instant::now();
    det.fit(&mut source, None).expect("fit");
    let fit_s = t.elapsed().as_secs_f64();
    drop(source);
    let (mut score_s, mut score_cpu_s) = (Vec::new(), Vec::new());
    let mut scores = Vec::new();
    for _ in 0..a.repeat {
        let (t, cpu) = (Instant::now(), cpu_seconds());
        scores = det
            .score(&query_logits, num_classes, Some(&query))
            .expect("score");
        score_s.push(t.elapsed().as_secs_f64());
        score_cpu_s.push(cpu_seconds() - cpu);
    }
    if let Some(dir) = &a.data_dir {
        write_f32(dir.join(format!("scores_{}.f32", a.detector)), &scores);
    }
    let json = serde_json::json!({
        "impl": "rust",
        "detector": det.name(),
        "n_train": a.n_train,
        "n_query": a.n_query,
        "dim": d,
        "k": a.k,
        "threads": rayon::current_num_threads(),
        "generate_s": gen_s,
        "fit_s": fit_s,
        "score_s": score_s,
        "score_cpu_s": score_cpu_s,
        "rss_before_fit_mib": rss_before_fit,
        "peak_rss_mib": proc_status_mib("VmHWM"),
        "fitted": det.fitted(),
    });
    println!("{json}");
}
