//! The one training loop, shared by every family ([`Family`]).
//!
//! In order: the run folder (created only once the config, the data and the weights have
//! loaded, which the caller did before calling [`train`]), resume from the last checkpoint,
//! then per step: the learning rate, the family's loss, one device read of the loss and its
//! terms, the NaN guard, backward, the optimiser step, the family's after-update hook (EMA),
//! TensorBoard, periodic evaluation and `checkpoints/best/`; per epoch: the family's
//! statistics, the checkpoint cadence, the epoch line; at the end the final evaluation and
//! `metrics.json`. Ctrl-C finishes the step in progress, writes a checkpoint (mid-epoch if need
//! be) and stops with [`Interrupted`]; `--resume` continues bit for bit.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use unseen_data::Rng;

use crate::config::ExperimentConfig;
use crate::run::checkpoint::{self, Best, TrainState};
use crate::run::family::{Evaluated, Family, StepValues};
use crate::run::faults;
use crate::run::interrupt;
use crate::run::optim::{Optim, Schedule};
use crate::run::run_dir::{
    epoch_bar, prepare_run_dir, Halted, Interrupted, NonFiniteLoss, RunLock, TrainOptions,
};
use crate::run::tb::TbLogger;

/// Trains `model` with `fam` and evaluates it; writes the run folder. `started` is when the
/// command started (for `train_seconds`). Returns the summary printed at the end.
///
/// # Errors
/// An existing run folder without `--overwrite`, a missing or corrupt checkpoint on resume,
/// a non-finite loss ([`NonFiniteLoss`]), Ctrl-C ([`Interrupted`]), [`Halted`] when asked
/// to stop, or the family's own errors.
pub fn train<B: AutodiffBackend, F: Family<B>>(
    cfg: &ExperimentConfig,
    opts: &TrainOptions,
    device: &B::Device,
    mut fam: F,
    mut model: F::Model,
    started: Instant,
) -> Result<String> {
    let run_dir = prepare_run_dir(cfg, opts)?;
    let _lock = RunLock::acquire(&run_dir)?;
    let mut optim = Optim::<B, F::Model>::new(&cfg.train);
    let mut state = TrainState::start(cfg.seed);
    let resume_from = match opts.resume {
        Some(_) => checkpoint::find_for_resume(&run_dir)?,
        None => None,
    };
    if opts.resume.is_some() && resume_from.is_none() {
        eprintln!(
            "note: {} holds no checkpoint yet (the run stopped before its first one); \
             training it from the beginning",
            run_dir.display()
        );
    }
    if let Some(ck) = resume_from {
        state = checkpoint::load_state(&ck)?;
        model = fam.loaded(checkpoint::load_model(&ck, model, device)?);
        optim = optim.load(&ck.join("optim"), device)?;
        let legacy_best = fam.load_extras(&ck, &model, state.step)?;
        if state.best.is_none() {
            state.best = legacy_best;
        }
        if !opts.quiet {
            eprintln!(
                "resuming {} after epoch {} (step {})",
                run_dir.display(),
                state.epochs_done,
                state.step
            );
        }
    }
    interrupt::install()?;
    let t = &cfg.train;
    let spe = fam.steps_per_epoch();
    let schedule = Schedule::new(t, spe);
    let total = schedule.total;
    let eval_every = fam.eval_every_steps();
    let mut rng = Rng::from_state(state.rng);
    let mut tb = TbLogger::new(&run_dir.join("tb"))?;
    let stop_asked =
        |step: usize| interrupt::requested() || opts.interrupt_after_steps == Some(step);
    let interrupted = |state: &TrainState| -> anyhow::Error {
        Interrupted {
            step: state.step,
            // The epoch of the last finished step.
            epoch: state.step.saturating_sub(1) / spe + 1,
            checkpoint: checkpoint::last_dir(&run_dir).display().to_string(),
            run: run_dir.display().to_string(),
        }
        .into()
    };
    let mut first = state.step % spe;
    for epoch in state.step / spe..t.epochs {
        let epoch_started = Instant::now();
        let steps_run = spe - first;
        fam.start_epoch(epoch, first)?;
        let bar = epoch_bar(opts.quiet, spe, epoch, t.epochs);
        bar.set_position(first as u64);
        let mut eval_line = String::new();
        let mut stop = false;
        for _ in first..spe {
            let step = state.step;
            let lr = fam.lr(step, &schedule);
            let values = match train_step(&mut fam, model, &mut optim, lr, epoch, step, &mut rng)? {
                Ok((next, values)) => {
                    model = next;
                    values
                }
                Err(values) => {
                    return Err(NonFiniteLoss {
                        value: values.loss,
                        epoch: epoch + 1,
                        step,
                        terms: values.terms_line(),
                        checkpoint: checkpoint::last_dir(&run_dir).display().to_string(),
                        done: state.epochs_done,
                    }
                    .into())
                }
            };
            tb.scalar("loss/total", values.loss as f64, step);
            for (tag, v) in &values.terms {
                tb.scalar(tag, *v as f64, step);
            }
            tb.scalar("lr", lr, step);
            fam.record(&values);
            state.step += 1;
            faults::point("step");
            bar.inc(1);
            bar.set_message(format!("loss {:.4}", values.loss));
            if eval_every > 0 && state.step.is_multiple_of(eval_every) && state.step < total {
                faults::point("evaluate");
                let ev = fam.evaluate(&model, state.step, &mut tb)?;
                update_best(&fam, &model, &ev, &run_dir, &mut state.best, state.step)?;
                eval_line = format!(", {}", ev.line());
            }
            if stop_asked(state.step) && state.step < total {
                stop = true;
                if !state.step.is_multiple_of(spe) {
                    // Mid-epoch: the data streams resume from the step count.
                    bar.finish_and_clear();
                    state.rng = rng.state();
                    checkpoint::save(&run_dir, &model, &optim, &state, |dir| {
                        fam.save_extras(dir, state.step)
                    })?;
                    tb.flush();
                    return Err(interrupted(&state));
                }
            }
        }
        first = 0;
        bar.finish_and_clear();
        state.epochs_done = epoch + 1;
        state.rng = rng.state();
        let secs = epoch_started.elapsed().as_secs_f64();
        tb.scalar(
            "train/steps_per_second",
            steps_run as f64 / secs,
            state.step,
        );
        let summary = fam.end_epoch(&mut tb, state.step, secs);
        let last = epoch + 1 == t.epochs;
        if (epoch + 1) % t.checkpoint_every == 0 || last || stop {
            checkpoint::save(&run_dir, &model, &optim, &state, |dir| {
                fam.save_extras(dir, state.step)
            })?;
        }
        tb.flush();
        if !opts.quiet {
            eprintln!(
                "epoch {}/{}: {summary}, {secs:.1}s ({:.2} it/s){eval_line}",
                epoch + 1,
                t.epochs,
                steps_run as f64 / secs
            );
        }
        if stop {
            return Err(interrupted(&state));
        }
        if opts.halt_after_epochs == Some(state.epochs_done) && !last {
            return Err(Halted(state.epochs_done).into());
        }
    }
    faults::point("evaluate");
    let ev = fam.evaluate(&model, state.step, &mut tb)?;
    update_best(&fam, &model, &ev, &run_dir, &mut state.best, state.step)?;
    tb.flush();
    fam.finish(
        ev,
        state.best.as_ref(),
        started.elapsed().as_secs_f64(),
        &run_dir,
    )
}

/// One optimisation step: the family's loss on its next batch, then [`optimise`], then the
/// family's after-update hook (EMA). Returns the updated model with the step's values, or
/// (inner `Err`) the values of a loss that is not finite, in which case nothing was updated
/// and the model is dropped.
///
/// # Errors
/// The family's own (no batch left, ...).
#[allow(clippy::type_complexity)]
pub fn train_step<B: AutodiffBackend, F: Family<B>>(
    fam: &mut F,
    model: F::Model,
    optim: &mut Optim<B, F::Model>,
    lr: f64,
    epoch: usize,
    step: usize,
    rng: &mut Rng,
) -> Result<std::result::Result<(F::Model, StepValues), StepValues>> {
    let out = fam.step(&model, epoch, step, rng)?;
    Ok(optimise(model, optim, lr, out).inspect(|(m, _)| fam.after_update(m)))
}

/// The update of a computed loss: one device read of the loss and its terms, the NaN guard,
/// backward and the optimiser step at `lr`.
///
/// # Errors
/// The values, when the loss is not finite (nothing is updated).
pub fn optimise<B: AutodiffBackend, M: burn::module::AutodiffModule<B>>(
    model: M,
    optim: &mut Optim<B, M>,
    lr: f64,
    out: crate::run::family::StepLoss<B>,
) -> std::result::Result<(M, StepValues), StepValues> {
    let values = StepValues::read(&out);
    if !values.loss.is_finite() {
        return Err(values);
    }
    let grads = GradientsParams::from_grads(out.loss.backward(), &model);
    Ok((optim.step(lr, model, grads), values))
}

/// After an evaluation `ev` at `step`: when the family names a selection metric and `ev`
/// beats every earlier evaluation (the first always does; then strictly better, as USB's
/// `model_best.pth`), writes `checkpoints/best/` and makes it `best`.
fn update_best<B: AutodiffBackend, F: Family<B>>(
    fam: &F,
    model: &F::Model,
    ev: &F::Eval,
    run_dir: &Path,
    best: &mut Option<Best>,
    step: usize,
) -> Result<()> {
    let Some(score) = ev.selection() else {
        return Ok(());
    };
    if is_new_best(best.as_ref(), score) {
        let record = ev.record()?;
        checkpoint::save_best(run_dir, &record, |dir| fam.save_evaluated(model, dir))?;
        *best = Some(Best {
            step,
            score,
            record,
        });
    }
    Ok(())
}

/// Whether an evaluation scoring `score` becomes the best: the first one does, a later one
/// when strictly better (USB: `top-1-acc > best_eval_acc`).
pub fn is_new_best(best: Option<&Best>, score: f64) -> bool {
    best.is_none_or(|b| score > b.score)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_rule_is_first_then_strictly_better() {
        let b = Best {
            step: 100,
            score: 0.9,
            record: serde_json::Value::Null,
        };
        assert!(is_new_best(None, 0.0));
        assert!(!is_new_best(Some(&b), 0.9));
        assert!(!is_new_best(Some(&b), 0.8));
        assert!(is_new_best(Some(&b), 0.9 + 1e-9));
    }
}
