//! Exponential moving average of a model's weights, as USB's `EMA` + `EMAHook`: every
//! parameter becomes `m·ema + (1 − m)·model`, every BatchNorm running statistic a copy of the
//! model's (`EMAHook.after_train_step` loads the live state dict before the shadow).

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

pub(crate) struct CollectFloats<B: Backend>(pub(crate) Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for CollectFloats<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend<B: Backend> {
    ema: std::vec::IntoIter<Tensor<B, 1>>,
    momentum: f64,
    stack: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let old = self
            .ema
            .next()
            .expect("EMA and model have the same structure");
        let buffer = matches!(
            self.stack.last().map(String::as_str),
            Some("running_mean" | "running_var")
        );
        let tensor = if buffer {
            tensor
        } else {
            let shape = tensor.shape();
            old.reshape(shape)
                .mul_scalar(self.momentum)
                .add(tensor.mul_scalar(1.0 - self.momentum))
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// USB's EMA step (see the [module docs](self)): every parameter becomes
/// `m·ema + (1 − m)·model`, every BatchNorm running statistic the model's.
///
/// # Panics
/// If the two modules differ in structure.
pub fn ema_update<B: Backend, M: Module<B>>(ema: &M, model: M, momentum: f64) -> M {
    let mut collect = CollectFloats(Vec::new());
    ema.visit(&mut collect);
    let mut blend = Blend {
        ema: collect.0.into_iter(),
        momentum,
        stack: Vec::new(),
    };
    let out = model.map(&mut blend);
    assert!(
        blend.ema.next().is_none(),
        "EMA and model have the same structure"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::module::AutodiffModule;
    use unseen_data::Rng;

    type TB = Flex;

    fn floats<B: Backend, M: Module<B>>(m: &M) -> Vec<f32> {
        let mut c = CollectFloats(Vec::new());
        m.visit(&mut c);
        c.0.into_iter()
            .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn ema_blends_parameters_and_copies_batchnorm_buffers() {
        let device = Default::default();
        let spec = unseen_backbones::BackboneSpec {
            in_channels: 1,
            width: Some(4),
            ..unseen_backbones::BackboneSpec::new("resnet_small")
        };
        let mut r = Rng::new(1);
        let a = unseen_backbones::init::reinit(spec.init::<TB>(3, &device).unwrap(), &mut || {
            r.next_f64()
        });
        let mut r = Rng::new(2);
        let b0 = unseen_backbones::init::reinit(spec.init::<TB>(3, &device).unwrap(), &mut || {
            r.next_f64()
        });
        // Give `b` BatchNorm statistics different from `a`'s with one training-mode pass.
        let ad =
            unseen_backbones::init::reinit(spec.init::<Autodiff<TB>>(3, &device).unwrap(), &mut {
                let mut r = Rng::new(2);
                move || r.next_f64()
            });
        let x = Tensor::<Autodiff<TB>, 4>::ones([2, 1, 8, 8], &device);
        let _ = ad.forward(x);
        let b = ad.valid();
        assert_eq!(floats(&b0).len(), floats(&b).len());
        let (fa, fb) = (floats(&a), floats(&b));
        let e = ema_update(&a, b.clone(), 0.75);
        let fe = floats(&e);
        // Which entries are buffers: visit with the path.
        struct Kinds(Vec<bool>, Vec<String>);
        impl<B: Backend> ModuleVisitor<B> for Kinds {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.1.push(name.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.1.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                let buf = matches!(
                    self.1.last().map(String::as_str),
                    Some("running_mean" | "running_var")
                );
                let n = p.val().shape().num_elements();
                self.0.extend(std::iter::repeat_n(buf, n));
            }
        }
        let mut kinds = Kinds(Vec::new(), Vec::new());
        a.visit(&mut kinds);
        let kinds = kinds.0;
        assert_eq!(kinds.len(), fe.len());
        assert!(kinds.iter().any(|&k| k) && kinds.iter().any(|&k| !k));
        let mut buffers_differ = false;
        for i in 0..fe.len() {
            if kinds[i] {
                assert_eq!(fe[i], fb[i], "buffer {i} copied from the model");
                buffers_differ |= fa[i] != fb[i];
            } else {
                let want = 0.75 * fa[i] + 0.25 * fb[i];
                assert!(
                    (fe[i] - want).abs() < 1e-6,
                    "param {i}: {} vs {want}",
                    fe[i]
                );
            }
        }
        assert!(
            buffers_differ,
            "the test needs different running statistics"
        );
        // Momentum 0: the model itself.
        assert_eq!(floats(&ema_update(&a, b.clone(), 0.0)), fb);
    }
}
