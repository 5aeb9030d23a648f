//! Deterministic parameter initialisation.
//!
//! burn's initialisers draw from the backend's generator, and on `flex` (0.21.0) the seed
//! set by `Backend::seed` is consumed by the *first* random tensor: every later one comes
//! from the operating system's entropy, so two runs with the same seed get different
//! weights. Unseen promises bit-identical runs, so after building a network we overwrite
//! every parameter from a caller-supplied uniform source (the trainer passes its seeded
//! generator). The distributions are torchvision's:
//!
//! | parameter | distribution |
//! |---|---|
//! | `Conv2d.weight` `[out, in/g, kh, kw]` | Kaiming normal, fan-out, ReLU gain: `N(0, 2 / (out·kh·kw))` |
//! | `Conv2d.bias` | `U(±1/sqrt(in/g·kh·kw))` (PyTorch default) |
//! | `Linear.weight` (burn layout `[in, out]`) | `U(±1/sqrt(in))` (PyTorch default) |
//! | `Linear.bias` | `U(±1/sqrt(in))` |
//! | `BatchNorm`, `LayerNorm` | weight 1, bias 0 |
//! | ViT `cls_token`, `pos_embed` | `N(0, 0.02²)` |
//!
//! The values depend only on the source, never on the backend, so a `cuda` run starts from
//! the same weights as a `cpu` run with the same seed.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;

struct Reinit<'a> {
    uniform: &'a mut dyn FnMut() -> f64,
    stack: Vec<String>,
    /// fan-in of the last `Linear.weight` / `Conv2d.weight` seen, for its bias.
    last_fan_in: usize,
}

impl Reinit<'_> {
    fn normal(&mut self) -> f64 {
        // Box-Muller on (0, 1] x [0, 1).
        let u1 = 1.0 - (self.uniform)();
        let u2 = (self.uniform)();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

impl<B: Backend> ModuleMapper<B> for Reinit<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.stack.push(format!("{container_type}/{name}"));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.dims();
        let n: usize = shape.iter().product();
        let container = self
            .stack
            .iter()
            .rev()
            .find(|s| s.starts_with("Struct:"))
            .map(|s| s.split('/').next().unwrap_or("").to_string())
            .unwrap_or_default();
        let field = self
            .stack
            .last()
            .and_then(|s| s.split('/').nth(1))
            .unwrap_or("")
            .to_string();
        let values: Option<Vec<f32>> = match (container.as_str(), D) {
            // ViT's learned tokens (timm: trunc_normal(std=0.02) for the position embedding;
            // we use N(0, 0.02²) for both, the truncation at ±2 is a 4.6e-5-probability
            // event at this std).
            (_, 3) if field == "cls_token" || field == "pos_embed" => {
                Some((0..n).map(|_| (self.normal() * 0.02) as f32).collect())
            }
            ("Struct:Conv2d", 4) => {
                let fan_out = shape[0] * shape[2] * shape[3];
                self.last_fan_in = shape[1] * shape[2] * shape[3];
                let std = (2.0 / fan_out as f64).sqrt();
                Some((0..n).map(|_| (self.normal() * std) as f32).collect())
            }
            ("Struct:Linear", 2) => {
                self.last_fan_in = shape[0];
                let bound = 1.0 / (shape[0] as f64).sqrt();
                Some(
                    (0..n)
                        .map(|_| ((self.uniform)() * 2.0 - 1.0) as f32 * bound as f32)
                        .collect(),
                )
            }
            ("Struct:Linear", 1) | ("Struct:Conv2d", 1) => {
                let bound = 1.0 / (self.last_fan_in.max(1) as f64).sqrt();
                Some(
                    (0..n)
                        .map(|_| ((self.uniform)() * 2.0 - 1.0) as f32 * bound as f32)
                        .collect(),
                )
            }
            ("Struct:BatchNorm", 1) | ("Struct:LayerNorm", 1) => {
                // The param itself is the module field (gamma/beta): the field name is the
                // innermost stack entry only when burn reports it; fall back on the current
                // values, which burn initialises to exactly 1 and 0.
                let v = if field == "beta" { 0.0 } else { 1.0 };
                if field == "gamma" || field == "beta" {
                    Some(vec![v; n])
                } else {
                    None
                }
            }
            _ => None,
        };
        let tensor = match values {
            Some(v) => {
                let grad = tensor.is_require_grad();
                let t = Tensor::<B, D>::from_data(TensorData::new(v, shape), &tensor.device());
                if grad {
                    t.require_grad()
                } else {
                    t
                }
            }
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Re-initialises every parameter of `module` from `uniform` (a source of `[0, 1)`
/// numbers), with the distributions in the module docs. Deterministic: the same source
/// gives the same weights on every backend.
pub fn reinit<B: Backend, M: Module<B>>(module: M, uniform: &mut dyn FnMut() -> f64) -> M {
    let mut mapper = Reinit {
        uniform,
        stack: Vec::new(),
        last_fan_in: 1,
    };
    module.map(&mut mapper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackboneSpec;
    use burn::backend::Flex;

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn same_source_same_weights_and_torchvision_statistics() {
        let dev = Default::default();
        let spec = BackboneSpec::new("resnet18_cifar");
        let a = reinit(spec.init::<Flex>(10, &dev).unwrap(), &mut lcg(1));
        let b = reinit(spec.init::<Flex>(10, &dev).unwrap(), &mut lcg(1));
        let c = reinit(spec.init::<Flex>(10, &dev).unwrap(), &mut lcg(2));
        let flat = |m: &crate::Backbone<Flex>| {
            let crate::Backbone::ResNet(r) = m else {
                unreachable!("a ResNet spec")
            };
            r.clone()
        };
        let (ra, rb, rc) = (flat(&a), flat(&b), flat(&c));
        let va = params(&ra);
        assert_eq!(va, params(&rb));
        assert_ne!(va, params(&rc));
        // conv1 of the CIFAR stem: 64x3x3x3, fan_out = 64*9 = 576, std = sqrt(2/576) = 0.0589.
        let w = first_conv(&ra);
        let n = w.len() as f64;
        let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
        let sd = (w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!((sd - 0.0589).abs() < 0.006, "std {sd}");
    }

    fn params(m: &crate::resnet::ResNet<Flex>) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl<B: Backend> burn::module::ModuleVisitor<B> for Collect {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                self.0.extend(p.val().into_data().to_vec::<f32>().unwrap());
            }
        }
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0
    }

    fn first_conv(m: &crate::resnet::ResNet<Flex>) -> Vec<f32> {
        params(m)[..64 * 27].to_vec()
    }
}
