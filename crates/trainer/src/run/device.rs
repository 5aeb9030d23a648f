//! `--device` parsing and dispatch to a monomorphised backend.
//!
//! | flag | backend | Cargo feature |
//! |---|---|---|
//! | `cpu` | `Autodiff<Flex>` (pure-Rust CPU) | `flex` (default) |
//! | `cuda`, `cuda:N` | `Autodiff<Cuda>` (CUDA driver loaded at run time) | `cuda` |
//! | `tch-cpu`, `tch-cuda`, `tch-cuda:N` | `Autodiff<LibTorch>` | `tch` |

use anyhow::{bail, Result};

/// A device named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The `flex` CPU backend.
    Cpu,
    /// A CUDA GPU by index.
    Cuda(usize),
    /// libtorch on the CPU.
    TchCpu,
    /// libtorch on a CUDA GPU by index.
    TchCuda(usize),
}

impl DeviceChoice {
    /// Parses `cpu`, `cuda[:N]`, `tch-cpu`, `tch-cuda[:N]`.
    pub fn parse(s: &str) -> Result<Self> {
        let index = |rest: &str| -> Result<usize> {
            if rest.is_empty() {
                return Ok(0);
            }
            let Some(n) = rest.strip_prefix(':') else {
                bail!("unknown device `{s}`: expected cpu, cuda[:N], tch-cpu or tch-cuda[:N]");
            };
            n.parse()
                .map_err(|_| anyhow::anyhow!("device `{s}`: `{n}` is not a GPU index"))
        };
        Ok(match s {
            "cpu" => DeviceChoice::Cpu,
            "tch-cpu" => DeviceChoice::TchCpu,
            _ if s.starts_with("tch-cuda") => DeviceChoice::TchCuda(index(&s[8..])?),
            _ if s.starts_with("cuda") => DeviceChoice::Cuda(index(&s[4..])?),
            _ => bail!("unknown device `{s}`: expected cpu, cuda[:N], tch-cpu or tch-cuda[:N]"),
        })
    }

    /// The Cargo feature that compiles this device's backend.
    pub fn feature(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "flex",
            DeviceChoice::Cuda(_) => "cuda",
            DeviceChoice::TchCpu | DeviceChoice::TchCuda(_) => "tch",
        }
    }

    /// The name written in `metrics.json`.
    pub fn label(self) -> String {
        match self {
            DeviceChoice::Cpu => "cpu".into(),
            DeviceChoice::Cuda(i) => format!("cuda:{i}"),
            DeviceChoice::TchCpu => "tch-cpu".into(),
            DeviceChoice::TchCuda(i) => format!("tch-cuda:{i}"),
        }
    }

    /// The error for a device whose backend is not in this binary.
    pub fn not_compiled(self) -> anyhow::Error {
        anyhow::anyhow!(
            "this `trainer` binary was built without the `{}` feature, so device `{}` is not \
             available; rebuild with `cargo build --release -p trainer --features {}`",
            self.feature(),
            self.label(),
            self.feature()
        )
    }
}

/// Calls `$body` with a type alias `$B` bound to the autodiff backend of `$choice` and a
/// variable `$dev` holding its device. Devices whose feature is not compiled in return
/// [`DeviceChoice::not_compiled`]; a GPU backend whose driver is missing is probed first so
/// the user gets an error instead of a panic.
#[macro_export]
macro_rules! with_backend {
    ($choice:expr, |$B:ident, $dev:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::run::device::DeviceChoice;
        match $choice {
            DeviceChoice::Cpu => {
                #[cfg(feature = "flex")]
                {
                    type $B = burn::backend::Autodiff<burn::backend::Flex>;
                    let $dev = burn::backend::flex::FlexDevice;
                    $body
                }
                #[cfg(not(feature = "flex"))]
                {
                    Err($choice.not_compiled())
                }
            }
            DeviceChoice::Cuda(_i) => {
                #[cfg(feature = "cuda")]
                {
                    type $B = burn::backend::Autodiff<burn::backend::Cuda>;
                    let $dev = burn::backend::cuda::CudaDevice::new(_i);
                    $crate::run::device::probe::<$B>(&$dev, $choice)?;
                    $body
                }
                #[cfg(not(feature = "cuda"))]
                {
                    Err($choice.not_compiled())
                }
            }
            DeviceChoice::TchCpu | DeviceChoice::TchCuda(_) => {
                #[cfg(feature = "tch")]
                {
                    type $B = burn::backend::Autodiff<burn::backend::LibTorch>;
                    let $dev = match $choice {
                        DeviceChoice::TchCuda(i) => {
                            burn::backend::libtorch::LibTorchDevice::Cuda(i)
                        }
                        _ => burn::backend::libtorch::LibTorchDevice::Cpu,
                    };
                    $crate::run::device::probe::<$B>(&$dev, $choice)?;
                    $body
                }
                #[cfg(not(feature = "tch"))]
                {
                    Err($choice.not_compiled())
                }
            }
        }
    }};
}

/// Creates one small tensor on the device, turning a missing driver or GPU (which the
/// backends report by panicking) into an error.
pub fn probe<B: burn::tensor::backend::Backend>(
    device: &B::Device,
    choice: DeviceChoice,
) -> Result<()> {
    let dev = device.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let t = burn::tensor::Tensor::<B, 1>::ones([4], &dev);
        t.sum().into_scalar();
    }));
    std::panic::set_hook(hook);
    r.map_err(|e| {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown error".into());
        anyhow::anyhow!(
            "device `{}` is compiled in but could not be used (is the driver installed and \
             the GPU index valid?): {msg}",
            choice.label()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!(DeviceChoice::parse("cpu").unwrap(), DeviceChoice::Cpu);
        assert_eq!(DeviceChoice::parse("cuda").unwrap(), DeviceChoice::Cuda(0));
        assert_eq!(
            DeviceChoice::parse("cuda:3").unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert_eq!(
            DeviceChoice::parse("tch-cuda:1").unwrap(),
            DeviceChoice::TchCuda(1)
        );
        assert_eq!(
            DeviceChoice::parse("tch-cpu").unwrap(),
            DeviceChoice::TchCpu
        );
        assert!(DeviceChoice::parse("gpu").is_err());
        assert!(DeviceChoice::parse("cuda:x").is_err());
        assert!(DeviceChoice::parse("cuda1").is_err());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn missing_feature_is_a_clear_error() {
        let r: Result<()> = with_backend!(DeviceChoice::TchCpu, |_B, _dev| Ok(()));
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("--features tch"), "{msg}");
    }
}
