//! [Unseen patch: NCHW im2col convolution] 2-D convolution and both of its gradients, computed
//! per sample on the NCHW layout with one gemm each.
//!
//! For one sample and one group, `col` is the `[c_in/groups · kh · kw, oh · ow]` matrix of
//! input patches (Caffe's im2col: one row per (input channel, kernel row, kernel column), one
//! column per output pixel). Then
//!
//! - forward: `y_b = W · col_b` (`[c_out/groups, oh · ow]`, already NCHW, no transpose);
//! - input gradient: `dx_b = col2im(Wᵀ · dy_b)`, a scatter-add of the patch gradients;
//! - weight gradient: `dW = Σ_b dy_b · col_bᵀ`.
//!
//! A row of `col` for a fixed kernel offset is a run of one input row (a `copy_from_slice` at
//! stride 1), so building it costs a few memcpys per output row instead of the per-element,
//! per-channel bounds checks of the tiled NHWC im2col in `conv.rs`, and the input gradient
//! needs no transposed convolution. Samples run in parallel (rayon); the weight gradient sums
//! the batch in a fixed number of contiguous chunks that depends only on the shapes, then adds
//! the chunks in order, so results do not depend on the thread count.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::ops::ConvOptions;
use burn_backend::ops::conv::calculate_conv_output_size;
use burn_backend::{DType, Element};
use burn_std::{Bytes, Shape, bf16, f16};
use core::ops::{Add, Range};

use crate::{FlexTensor, Layout};

/// An element type the gemm crate multiplies natively.
pub(crate) trait ConvElem:
    Element + bytemuck::Pod + Copy + Send + Sync + Add<Output = Self> + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
}

impl ConvElem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl ConvElem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl ConvElem for f16 {
    const ZERO: Self = f16::from_f32_const(0.0);
    const ONE: Self = f16::from_f32_const(1.0);
}

/// Shapes and options of one 2-D convolution.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    groups: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    oh: usize,
    ow: usize,
}

impl Geometry {
    fn new(x_shape: &Shape, w_shape: &Shape, options: &ConvOptions<2>) -> Self {
        let (kh, kw) = (w_shape[2], w_shape[3]);
        let (h, w) = (x_shape[2], x_shape[3]);
        let oh = calculate_conv_output_size(
            kh,
            options.stride[0],
            options.padding[0],
            options.dilation[0],
            h,
        );
        let ow = calculate_conv_output_size(
            kw,
            options.stride[1],
            options.padding[1],
            options.dilation[1],
            w,
        );
        let g = Self {
            batch: x_shape[0],
            c_in: x_shape[1],
            h,
            w,
            c_out: w_shape[0],
            groups: options.groups,
            kh,
            kw,
            stride: options.stride,
            padding: options.padding,
            dilation: options.dilation,
            oh,
            ow,
        };
        assert!(
            g.groups > 0 && g.c_in % g.groups == 0 && g.c_out % g.groups == 0,
            "conv2d: {} input and {} output channels do not split into {} groups",
            g.c_in,
            g.c_out,
            g.groups
        );
        assert_eq!(
            w_shape[1],
            g.c_in / g.groups,
            "conv2d: weight has {} input channels per group, the input {} / {} groups",
            w_shape[1],
            g.c_in,
            g.groups
        );
        g
    }

    /// Input channels per group.
    fn cpg(&self) -> usize {
        self.c_in / self.groups
    }

    /// Output channels per group.
    fn ocpg(&self) -> usize {
        self.c_out / self.groups
    }

    /// Rows of one group's patch matrix: `cpg · kh · kw`.
    fn k(&self) -> usize {
        self.cpg() * self.kh * self.kw
    }

    /// Output pixels per channel.
    fn s(&self) -> usize {
        self.oh * self.ow
    }

    /// Length of the per-worker patch-matrix buffer: `k · s`, none for a pointwise convolution.
    fn scratch_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.k() * self.s()
        }
    }

    /// 1x1, stride 1, no padding: a group's patch matrix is its input planes as they are.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }
}

/// Output positions `o < n_out` whose input index `o · stride + offset` lies in `0..n_in`.
fn valid(n_out: usize, stride: usize, offset: isize, n_in: usize) -> Range<usize> {
    let s = stride as isize;
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + s - 1) / s
    };
    let room = n_in as isize - offset;
    let hi = if room <= 0 {
        0
    } else {
        ((room + s - 1) / s).min(n_out as isize)
    };
    let lo = (lo as usize).min(n_out);
    lo..(hi as usize).max(lo)
}

/// The patch matrix of one sample's group (`x_g`: its `cpg` input planes) into `col`
/// (`[k, s]`, fully overwritten).
fn im2col<T: ConvElem>(x_g: &[T], g: &Geometry, col: &mut [T]) {
    let (s, plane) = (g.s(), g.h * g.w);
    let mut rows = col.chunks_exact_mut(s);
    for c in 0..g.cpg() {
        let src = &x_g[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            let off_y = (ki * g.dilation[0]) as isize - g.padding[0] as isize;
            let ys = valid(g.oh, g.stride[0], off_y, g.h);
            for kj in 0..g.kw {
                let off_x = (kj * g.dilation[1]) as isize - g.padding[1] as isize;
                let xs = valid(g.ow, g.stride[1], off_x, g.w);
                let row = rows.next().expect("col has k rows");
                row[..ys.start * g.ow].fill(T::ZERO);
                row[ys.end * g.ow..].fill(T::ZERO);
                for oy in ys.clone() {
                    let iy = (oy * g.stride[0]) as isize + off_y;
                    let src_row = &src[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    dst[..xs.start].fill(T::ZERO);
                    dst[xs.end..].fill(T::ZERO);
                    if xs.is_empty() {
                        continue;
                    }
                    let first = (xs.start * g.stride[1]) as isize + off_x;
                    let first = first as usize;
                    if g.stride[1] == 1 {
                        dst[xs.clone()].copy_from_slice(&src_row[first..first + xs.len()]);
                    } else {
                        let src = src_row[first..].iter().step_by(g.stride[1]);
                        for (d, &v) in dst[xs.clone()].iter_mut().zip(src) {
                            *d = v;
                        }
                    }
                }
            }
        }
    }
}

/// The patch matrix (`[k, s]`) of sample `b`'s group `grp` of `x`: its input planes themselves
/// for a pointwise convolution, else built by [`im2col`] into `col`.
fn patches<'a, T: ConvElem>(
    x: &'a [T],
    b: usize,
    grp: usize,
    g: &Geometry,
    col: &'a mut [T],
) -> &'a [T] {
    let (cpg, plane) = (g.cpg(), g.h * g.w);
    let x_g = &x[(b * g.c_in + grp * cpg) * plane..][..cpg * plane];
    if g.is_pointwise() {
        x_g
    } else {
        im2col(x_g, g, col);
        col
    }
}

/// Adds the patch gradients `col` (`[k, s]`) of one sample's group into its input planes
/// `dx_g` (the transpose of [`im2col`]); same order for every call, so deterministic.
fn col2im_add<T: ConvElem>(col: &[T], g: &Geometry, dx_g: &mut [T]) {
    let (s, plane) = (g.s(), g.h * g.w);
    let mut rows = col.chunks_exact(s);
    for c in 0..g.cpg() {
        let dst = &mut dx_g[c * plane..(c + 1) * plane];
        for ki in 0..g.kh {
            let off_y = (ki * g.dilation[0]) as isize - g.padding[0] as isize;
            let ys = valid(g.oh, g.stride[0], off_y, g.h);
            for kj in 0..g.kw {
                let off_x = (kj * g.dilation[1]) as isize - g.padding[1] as isize;
                let xs = valid(g.ow, g.stride[1], off_x, g.w);
                let row = rows.next().expect("col has k rows");
                if xs.is_empty() {
                    continue;
                }
                let first = ((xs.start * g.stride[1]) as isize + off_x) as usize;
                for oy in ys.clone() {
                    let iy = ((oy * g.stride[0]) as isize + off_y) as usize;
                    let src = &row[oy * g.ow + xs.start..oy * g.ow + xs.end];
                    let dst_row = &mut dst[iy * g.w..(iy + 1) * g.w];
                    if g.stride[1] == 1 {
                        for (d, &v) in dst_row[first..first + src.len()].iter_mut().zip(src) {
                            *d = *d + v;
                        }
                    } else {
                        let dst = dst_row[first..].iter_mut().step_by(g.stride[1]);
                        for (d, &v) in dst.zip(src) {
                            *d = *d + v;
                        }
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (=|+=) Σ_k lhs[m, k] · rhs[k, n]`, every operand addressed by its strides
/// `(column stride, row stride)`.
#[allow(clippy::too_many_arguments)]
fn gemm<T: ConvElem>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_strides: (isize, isize),
    accumulate: bool,
    lhs: &[T],
    lhs_strides: (isize, isize),
    rhs: &[T],
    rhs_strides: (isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(T::ZERO);
        }
        return;
    }
    // SAFETY: callers pass slices that hold every addressed element (checked by the shapes
    // each caller derives its strides from); gemm reads lhs/rhs and writes dst only there.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.0,
            dst_strides.1,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs `f(index, chunk, scratch)` over the `len`-sized chunks of `out`, in parallel when rayon
/// is on, with one scratch buffer of `scratch_len` zeros per worker.
fn for_each_chunk<T: ConvElem>(
    out: &mut [T],
    len: usize,
    scratch_len: usize,
    f: impl Fn(usize, &mut [T], &mut Vec<T>) + Send + Sync,
) {
    if len == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(len).enumerate().for_each_init(
            || vec![T::ZERO; scratch_len],
            |scratch, (i, chunk)| f(i, chunk, scratch),
        );
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut scratch = vec![T::ZERO; scratch_len];
        for (i, chunk) in out.chunks_mut(len).enumerate() {
            f(i, chunk, &mut scratch);
        }
    }
}

fn forward<T: ConvElem>(x: &[T], w: &[T], bias: Option<&[T]>, g: &Geometry) -> Vec<T> {
    let (s, k, ocpg) = (g.s(), g.k(), g.ocpg());
    let mut out = vec![T::ZERO; g.batch * g.c_out * s];
    let scratch = g.scratch_len();
    for_each_chunk(&mut out, g.c_out * s, scratch, |b, y_b, col| {
        for grp in 0..g.groups {
            let col = patches(x, b, grp, g, col);
            gemm(
                (ocpg, s, k),
                &mut y_b[grp * ocpg * s..(grp + 1) * ocpg * s],
                (1, s as isize),
                false,
                &w[grp * ocpg * k..(grp + 1) * ocpg * k],
                (1, k as isize),
                col,
                (1, s as isize),
            );
        }
        if let Some(bias) = bias {
            for (y_c, &b) in y_b.chunks_exact_mut(s).zip(bias) {
                y_c.iter_mut().for_each(|v| *v = *v + b);
            }
        }
    });
    out
}

fn input_grad<T: ConvElem>(w: &[T], dy: &[T], g: &Geometry) -> Vec<T> {
    let (s, k, ocpg, cpg, plane) = (g.s(), g.k(), g.ocpg(), g.cpg(), g.h * g.w);
    let mut dx = vec![T::ZERO; g.batch * g.c_in * plane];
    let scratch = g.scratch_len();
    for_each_chunk(&mut dx, g.c_in * plane, scratch, |b, dx_b, col| {
        for grp in 0..g.groups {
            let dy_g = &dy[(b * g.c_out + grp * ocpg) * s..][..ocpg * s];
            let w_g = &w[grp * ocpg * k..(grp + 1) * ocpg * k];
            let dx_g = &mut dx_b[grp * cpg * plane..(grp + 1) * cpg * plane];
            // Wᵀ[k, ocpg]: element (row r, column o) is w_g[o · k + r].
            let target: &mut [T] = if g.is_pointwise() { dx_g } else { col };
            gemm(
                (k, s, ocpg),
                target,
                (1, s as isize),
                false,
                w_g,
                (k as isize, 1),
                dy_g,
                (1, s as isize),
            );
            if !g.is_pointwise() {
                col2im_add(col, g, dx_g);
            }
        }
    });
    dx
}

/// Contiguous batch ranges the weight gradient is summed over, a function of the shapes only:
/// at most 32, and few enough that their partial sums stay under 16 Mi elements (64 MB of f32;
/// ResNet-50's largest weight, 512 x 4608, still gets 7 chunks, so 7 threads).
fn batch_chunks(g: &Geometry) -> Vec<Range<usize>> {
    let per = (g.c_out * g.k()).max(1);
    let n = g.batch.min(32).min((16 << 20) / per).max(1);
    (0..n)
        .map(|i| (i * g.batch / n)..((i + 1) * g.batch / n))
        .collect()
}

fn weight_grad<T: ConvElem>(x: &[T], dy: &[T], g: &Geometry) -> Vec<T> {
    let (s, k, ocpg) = (g.s(), g.k(), g.ocpg());
    let per = g.c_out * k;
    let chunks = batch_chunks(g);
    let mut partial = vec![T::ZERO; chunks.len() * per];
    let scratch = g.scratch_len();
    for_each_chunk(&mut partial, per, scratch, |i, dw, col| {
        for b in chunks[i].clone() {
            for grp in 0..g.groups {
                let col = patches(x, b, grp, g, col);
                let dy_g = &dy[(b * g.c_out + grp * ocpg) * s..][..ocpg * s];
                // colᵀ[s, k]: element (row p, column r) is col[r · s + p].
                gemm(
                    (ocpg, k, s),
                    &mut dw[grp * ocpg * k..(grp + 1) * ocpg * k],
                    (1, k as isize),
                    true,
                    dy_g,
                    (1, s as isize),
                    col,
                    (s as isize, 1),
                );
            }
        }
    });
    let mut parts = partial.chunks_exact(per);
    let mut dw = parts
        .next()
        .map(<[T]>::to_vec)
        .unwrap_or_else(|| vec![T::ZERO; per]);
    for p in parts {
        dw.iter_mut().zip(p).for_each(|(a, &b)| *a = *a + b);
    }
    dw
}

fn tensor<T: ConvElem>(data: Vec<T>, shape: [usize; 4], dtype: DType) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(Shape::from(shape.to_vec())),
        dtype,
    )
}

fn to_f32(t: FlexTensor) -> FlexTensor {
    super::module::cast_to_f32(t, bf16::to_f32)
}

fn to_bf16(t: FlexTensor) -> FlexTensor {
    super::module::cast_from_f32(t, bf16::from_f32)
}

fn conv2d_typed<T: ConvElem>(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let bias = bias.map(|b| b.to_contiguous());
    let g = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let y = forward::<T>(
        x.storage(),
        weight.storage(),
        bias.as_ref().map(|b| b.storage()),
        &g,
    );
    tensor(y, [g.batch, g.c_out, g.oh, g.ow], x.dtype())
}

fn x_grad_typed<T: ConvElem>(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (weight, dy) = (weight.to_contiguous(), dy.to_contiguous());
    let g = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let dx = input_grad::<T>(weight.storage(), dy.storage(), &g);
    tensor(dx, [g.batch, g.c_in, g.h, g.w], dy.dtype())
}

fn weight_grad_typed<T: ConvElem>(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let (x, dy) = (x.to_contiguous(), dy.to_contiguous());
    let g = Geometry::new(x.layout().shape(), weight.layout().shape(), options);
    let dw = weight_grad::<T>(x.storage(), dy.storage(), &g);
    tensor(dw, [g.c_out, g.cpg(), g.kh, g.kw], dy.dtype())
}

/// 2-D convolution (NCHW input `[n, c_in, h, w]`, weight `[c_out, c_in/groups, kh, kw]`);
/// f32, f64 and f16 natively, bf16 through f32.
pub fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => conv2d_typed::<f32>(x, weight, bias, options),
        DType::F64 => conv2d_typed::<f64>(x, weight, bias, options),
        DType::F16 => conv2d_typed::<f16>(x, weight, bias, options),
        DType::BF16 => to_bf16(conv2d_typed::<f32>(
            to_f32(x),
            to_f32(weight),
            bias.map(to_f32),
            options,
        )),
        dtype => panic!("conv2d: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of [`conv2d`] with respect to its input, given the output gradient `dy`.
pub fn conv2d_x_backward(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => x_grad_typed::<f32>(x, weight, dy, options),
        DType::F64 => x_grad_typed::<f64>(x, weight, dy, options),
        DType::F16 => x_grad_typed::<f16>(x, weight, dy, options),
        DType::BF16 => to_bf16(x_grad_typed::<f32>(x, to_f32(weight), to_f32(dy), options)),
        dtype => panic!("conv2d_x_backward: unsupported dtype {dtype:?}"),
    }
}

/// Gradient of [`conv2d`] with respect to its weight, given the output gradient `dy`.
pub fn conv2d_weight_backward(
    x: FlexTensor,
    weight: FlexTensor,
    dy: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => weight_grad_typed::<f32>(x, weight, dy, options),
        DType::F64 => weight_grad_typed::<f64>(x, weight, dy, options),
        DType::F16 => weight_grad_typed::<f16>(x, weight, dy, options),
        DType::BF16 => to_bf16(weight_grad_typed::<f32>(
            to_f32(x),
            weight,
            to_f32(dy),
            options,
        )),
        dtype => panic!("conv2d_weight_backward: unsupported dtype {dtype:?}"),
    }
}
