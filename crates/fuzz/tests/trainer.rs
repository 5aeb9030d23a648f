//! Fuzz targets for what the trainer reads: TOML configs (schema and every family's
//! method tables), `--set` overrides, and a run's checkpoint files (`state.json`,
//! `checksums.json`, the `.mpk` weight records). The invariant and the budget knobs are the
//! harness's (`unseen_fuzz`).

use std::path::{Path, PathBuf};

use unseen_fuzz::{run, Budget, Seed, Target};

type B = burn::backend::Flex;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every shipped config is a seed.
fn config_seeds() -> Vec<Seed> {
    let mut seeds = Vec::new();
    for dir in ["configs", "configs/cpu", "configs/papers"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        for f in files {
            seeds.push(Seed::new(
                f.file_name().unwrap().to_string_lossy(),
                std::fs::read(&f).unwrap(),
            ));
        }
    }
    seeds
}

#[test]
fn config_files() {
    // Config parsing is fast: 4000 cases take about 2 s in the test profile.
    let target = Target::new("config_toml", "experiment.toml");
    run(&target, &config_seeds(), Budget::from_env(4000), |p| {
        trainer::families::load_config(p, &[])
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    });
}

#[test]
fn set_overrides() {
    // The file holds one `--set` argument per line, applied to the quickstart config.
    let mut target = Target::new("set_override", "overrides.txt");
    target.names_file = false;
    let seeds = [
        Seed::new(
            "typical",
            b"train.lr=0.05\nmodel.width=8\nrecipe=oe\ndata.id.classes=\"0-5\"\n".to_vec(),
        ),
        Seed::new(
            "tables",
            b"loss.oe_weight=0.5\ntrain.milestones=[1, 2]\neval.detectors=[\"msp\"]\n".to_vec(),
        ),
    ];
    let base = repo().join("configs/quickstart.toml");
    run(&target, &seeds, Budget::from_env(4000), |p| {
        let text = String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned();
        let sets: Vec<String> = text.lines().map(str::to_string).collect();
        trainer::families::load_config(&base, &sets)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    });
}

/// A real checkpoint of a tiny network: the folder and the network it loads into.
fn checkpoint() -> (tempfile::TempDir, unseen_backbones::Backbone<B>) {
    let cfg = trainer::config::load(
        &repo().join("configs/quickstart.toml"),
        &["model.width=4".to_string()],
    )
    .unwrap();
    let device = Default::default();
    let model = trainer::families::build::build_for_checkpoint::<B>(&cfg, 6, 28, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    trainer::run::checkpoint::save_weights(&dir.path().join("model"), &model).unwrap();
    let state = trainer::run::checkpoint::TrainState::start(7);
    std::fs::write(
        dir.path().join("state.json"),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
    trainer::run::checkpoint::write_checksums(dir.path()).unwrap();
    (dir, model)
}

#[test]
fn state_json() {
    let (dir, _) = checkpoint();
    let seed = Seed::new(
        "state",
        std::fs::read(dir.path().join("state.json")).unwrap(),
    );
    let target = Target::new("state_json", "state.json");
    run(&target, &[seed], Budget::from_env(4000), |p| {
        trainer::run::checkpoint::load_state(p.parent().unwrap())
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    });
}

#[test]
fn checksums_json() {
    let (dir, _) = checkpoint();
    let seed = Seed::new(
        "checksums",
        std::fs::read(dir.path().join("checksums.json")).unwrap(),
    );
    let model = std::fs::read(dir.path().join("model.mpk")).unwrap();
    let state = std::fs::read(dir.path().join("state.json")).unwrap();
    // A damaged list makes the files it lists look damaged: the error names the
    // checkpoint folder and the file whose sum differs, which is what a user needs.
    let mut target = Target::new("checksums_json", "checksums.json");
    target.names_file = false;
    run(&target, &[seed], Budget::from_env(3000), |p| {
        let d = p.parent().unwrap();
        std::fs::write(d.join("model.mpk"), &model).unwrap();
        std::fs::write(d.join("state.json"), &state).unwrap();
        let r = trainer::run::checkpoint::verify(d).map_err(|e| format!("{e:#}"));
        if let Err(e) = &r {
            assert!(
                e.contains(&format!("checkpoint {} is corrupt", d.display())),
                "{e}"
            );
        }
        r
    });
}

#[test]
fn weight_records() {
    // Loading builds tensors, so fewer cases: 1500 take about 10 s in the test profile.
    let (dir, model) = checkpoint();
    let bytes = std::fs::read(dir.path().join("model.mpk")).unwrap();
    let seed = Seed::new("resnet_small width 4", bytes);
    let target = Target::new("model_mpk", "model.mpk");
    let device = Default::default();
    run(&target, &[seed], Budget::from_env(1500), |p| {
        trainer::run::checkpoint::load_weights::<B, _>(
            &p.with_extension(""),
            model.clone(),
            &device,
        )
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
    });
}
