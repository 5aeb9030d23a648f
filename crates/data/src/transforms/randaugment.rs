//! RandAugment with Cutout, as USB uses it for the strong view of FixMatch-style methods
//! (FixMatch, IOMatch, ...).
//!
//! Reference: `microsoft/Semi-supervised-learning`,
//! `semilearn/datasets/augmentation/randaugment.py` (the same file ships in
//! `nukezil/IOMatch`), class `RandAugment(n, m)`, used as `RandAugment(3, 5)` in
//! `semilearn/datasets/cv_datasets/cifar.py`. For each image it
//! 1. picks `n` operations uniformly **with replacement** (`random.choices(list, k=n)`);
//! 2. applies each with a magnitude drawn uniformly in the op's range
//!    (`min + (max - min) * random()`); the `m` argument is unused ("deprecated");
//! 3. always ends with Cutout: `v = random() * 0.5`, a square of side `v * width` pixels
//!    filled with `(125, 123, 114)`.
//!
//! The op list and ranges ([`RandOp::range`], [`USB_OPS`]): AutoContrast, Brightness
//! `[0.05, 0.95]`, Color `[0.05, 0.95]`, Contrast `[0.05, 0.95]`, Equalize, Identity,
//! Posterize `[4, 8]` (bits, truncated: 4..=7), Rotate `[-30, 30]` degrees, Sharpness
//! `[0.05, 0.95]`, ShearX/ShearY `[-0.3, 0.3]`, Solarize `[0, 256]`, TranslateX/TranslateY
//! `[-0.3, 0.3]` of the width/height. Every op draws a magnitude, even those that ignore it
//! (AutoContrast, Equalize, Identity), as the reference does. Geometric ops sample the
//! nearest pixel and fill with black, Pillow's defaults. The pixel arithmetic is Pillow's
//! (see [`pixel_ops`](super::pixel_ops)).
//!
//! # Cutout, exactly
//! `CutoutAbs` draws the centre with `np.random.uniform(w)`, which is NumPy's
//! `uniform(low=w, high=1.0)`: a value in `(1, w]`, not `[0, w)`. Then
//! `x0 = int(max(0, cx - v/2))`, `x1 = min(w, x0 + v)` (same for y with `h` and the same
//! side `v`), and `ImageDraw.rectangle((x0, y0, x1, y1))` fills columns `x0..=int(x1)` and
//! rows `y0..=int(y1)` (Pillow truncates the float corners and includes both ends), clipped
//! to the image. We reproduce all of it ([`cutout_rect`]), so the patch is never centred on
//! column 0 and is `int(x0 + v) - x0 + 1` pixels wide, as in the reference.
//!
//! # Grey images (MNIST, Fashion-MNIST)
//! The reference only runs on RGB. For one-channel images:
//! - Color blends with the grey image, which *is* the image: it is the identity. The
//!   [`RandAugmentOps::Grey`] list therefore drops it (otherwise Identity would be drawn
//!   twice as often); every other op acts on grey images as on each RGB channel.
//! - The Cutout colour `(125, 123, 114)` becomes its luma, 123 ([`USB_CUTOUT_FILL_GREY`]):
//!   the grey value an RGB pipeline would show after conversion.
//!
//! USB also defines `augment_list_no_color()` (for `exclude_color_aug=True`), available as
//! [`RandAugmentOps::UsbNoColor`]: Brightness, Equalize, Identity, Rotate, Sharpness,
//! ShearX, ShearY, TranslateX, TranslateY.
//!
//! # Determinism
//! Draws from the given [`Rng`], in the reference's order: the `n` op indices
//! (`below(len)`), then each op's magnitude (`next_f64`), then the Cutout fraction
//! (`next_f64`) and, when it is positive, the centre's x then y (`next_f64` each).

use serde::{Deserialize, Serialize};

use super::check_len;
use super::pixel_ops as px;
use crate::error::{DataError, Result};
use crate::rng::Rng;

/// One RandAugment operation of USB's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandOp {
    /// `ImageOps.autocontrast` (magnitude ignored).
    AutoContrast,
    /// `ImageEnhance.Brightness`, factor in `[0.05, 0.95]`.
    Brightness,
    /// `ImageEnhance.Color`, factor in `[0.05, 0.95]` (identity on grey images).
    Color,
    /// `ImageEnhance.Contrast`, factor in `[0.05, 0.95]`.
    Contrast,
    /// `ImageOps.equalize` (magnitude ignored).
    Equalize,
    /// No change.
    Identity,
    /// `ImageOps.posterize`, bits `int(v)` with `v` in `[4, 8]`.
    Posterize,
    /// `Image.rotate`, degrees in `[-30, 30]` (counter-clockwise when positive).
    Rotate,
    /// `ImageEnhance.Sharpness`, factor in `[0.05, 0.95]`.
    Sharpness,
    /// Horizontal shear `(1, v, 0, 0, 1, 0)`, `v` in `[-0.3, 0.3]`.
    ShearX,
    /// Vertical shear `(1, 0, 0, v, 1, 0)`, `v` in `[-0.3, 0.3]`.
    ShearY,
    /// `ImageOps.solarize`, threshold in `[0, 256]`.
    Solarize,
    /// Horizontal shift by `v * width`, `v` in `[-0.3, 0.3]`.
    TranslateX,
    /// Vertical shift by `v * height`, `v` in `[-0.3, 0.3]`.
    TranslateY,
}

/// USB's `augment_list()`, in its order.
pub const USB_OPS: [RandOp; 14] = [
    RandOp::AutoContrast,
    RandOp::Brightness,
    RandOp::Color,
    RandOp::Contrast,
    RandOp::Equalize,
    RandOp::Identity,
    RandOp::Posterize,
    RandOp::Rotate,
    RandOp::Sharpness,
    RandOp::ShearX,
    RandOp::ShearY,
    RandOp::Solarize,
    RandOp::TranslateX,
    RandOp::TranslateY,
];

/// USB's `augment_list_no_color()`, in its order.
pub const USB_NO_COLOR_OPS: [RandOp; 9] = [
    RandOp::Brightness,
    RandOp::Equalize,
    RandOp::Identity,
    RandOp::Rotate,
    RandOp::Sharpness,
    RandOp::ShearX,
    RandOp::ShearY,
    RandOp::TranslateX,
    RandOp::TranslateY,
];

/// [`USB_OPS`] without Color, which is the identity on one-channel images.
pub const GREY_OPS: [RandOp; 13] = [
    RandOp::AutoContrast,
    RandOp::Brightness,
    RandOp::Contrast,
    RandOp::Equalize,
    RandOp::Identity,
    RandOp::Posterize,
    RandOp::Rotate,
    RandOp::Sharpness,
    RandOp::ShearX,
    RandOp::ShearY,
    RandOp::Solarize,
    RandOp::TranslateX,
    RandOp::TranslateY,
];

/// USB's Cutout colour, `(125, 123, 114)`.
pub const USB_CUTOUT_FILL: [u8; 3] = [125, 123, 114];

/// The luma of [`USB_CUTOUT_FILL`] (Pillow's `L` conversion): the Cutout grey for
/// one-channel images.
pub const USB_CUTOUT_FILL_GREY: u8 = 123;

impl RandOp {
    /// The magnitude range `(min, max)` of USB's `augment_list()`.
    pub fn range(self) -> (f64, f64) {
        match self {
            RandOp::AutoContrast | RandOp::Equalize | RandOp::Identity => (0.0, 1.0),
            RandOp::Brightness | RandOp::Color | RandOp::Contrast | RandOp::Sharpness => {
                (0.05, 0.95)
            }
            RandOp::Posterize => (4.0, 8.0),
            RandOp::Rotate => (-30.0, 30.0),
            RandOp::ShearX | RandOp::ShearY | RandOp::TranslateX | RandOp::TranslateY => {
                (-0.3, 0.3)
            }
            RandOp::Solarize => (0.0, 256.0),
        }
    }

    /// True for the ops that move pixels (rotate, shear, translate).
    pub fn is_geometric(self) -> bool {
        matches!(
            self,
            RandOp::Rotate
                | RandOp::ShearX
                | RandOp::ShearY
                | RandOp::TranslateX
                | RandOp::TranslateY
        )
    }

    /// Applies the op with magnitude `v` to the `u8` CHW image `img` in place (`scratch`
    /// is resized and used by the geometric ops). Geometric ops fill with black.
    ///
    /// # Panics
    /// If `img` does not hold `c * h * w` bytes, or for Color / Contrast when `c` is not 1
    /// or 3.
    pub fn apply(
        self,
        img: &mut [u8],
        c: usize,
        h: usize,
        w: usize,
        v: f64,
        scratch: &mut Vec<u8>,
    ) {
        check_len("image", img.len(), c, h, w);
        match self {
            RandOp::AutoContrast => px::autocontrast(img, c, h, w),
            RandOp::Brightness => px::brightness(img, v),
            RandOp::Color => px::color(img, c, h, w, v),
            RandOp::Contrast => px::contrast(img, c, h, w, v),
            RandOp::Equalize => px::equalize(img, c, h, w),
            RandOp::Identity => {}
            // Python: v = int(v); v = max(1, v).
            RandOp::Posterize => px::posterize(img, (v as i64).clamp(1, 8) as u8),
            RandOp::Sharpness => px::sharpness(img, c, h, w, v),
            RandOp::Solarize => px::solarize(img, v),
            geometric => {
                scratch.clear();
                scratch.extend_from_slice(img);
                let f = match geometric {
                    RandOp::Rotate => px::rotate,
                    RandOp::ShearX => px::shear_x,
                    RandOp::ShearY => px::shear_y,
                    RandOp::TranslateX => px::translate_x,
                    _ => px::translate_y,
                };
                f(scratch, c, h, w, v, 0, img);
            }
        }
    }
}

/// Which operation list RandAugment draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandAugmentOps {
    /// USB's full list, [`USB_OPS`] (the CIFAR / ImageNet setting).
    #[default]
    Usb,
    /// USB's `augment_list_no_color()`, [`USB_NO_COLOR_OPS`].
    UsbNoColor,
    /// [`GREY_OPS`]: the full list without Color, for one-channel images.
    Grey,
}

impl RandAugmentOps {
    /// The operations of the list.
    pub fn ops(self) -> &'static [RandOp] {
        match self {
            RandAugmentOps::Usb => &USB_OPS,
            RandAugmentOps::UsbNoColor => &USB_NO_COLOR_OPS,
            RandAugmentOps::Grey => &GREY_OPS,
        }
    }
}

fn default_num_ops() -> usize {
    3
}

fn default_cutout_max() -> f64 {
    0.5
}

/// RandAugment + Cutout settings, written in a config as e.g.
///
/// ```toml
/// [strong.randaugment]
/// num_ops = 3          # USB: RandAugment(3, 5)
/// ops = "usb"          # "usb" | "usb_no_color" | "grey"
/// cutout_max = 0.5     # Cutout side = U[0, cutout_max) * width; 0 disables Cutout
/// # cutout_fill = [125, 123, 114]   # default: USB's colour (RGB) or 123 (grey)
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandAugment {
    /// Operations per image, drawn with replacement (USB: 3).
    #[serde(default = "default_num_ops")]
    pub num_ops: usize,
    /// The list they are drawn from.
    #[serde(default)]
    pub ops: RandAugmentOps,
    /// The Cutout side is `U[0, cutout_max) * width` pixels (USB: 0.5). 0 disables Cutout.
    #[serde(default = "default_cutout_max")]
    pub cutout_max: f64,
    /// The Cutout colour, one value per channel; by default [`USB_CUTOUT_FILL`] for RGB and
    /// [`USB_CUTOUT_FILL_GREY`] for grey images.
    #[serde(default)]
    pub cutout_fill: Option<Vec<u8>>,
}

impl Default for RandAugment {
    fn default() -> Self {
        Self::usb()
    }
}

/// The pixels a Cutout covers: rows `y0..y1`, columns `x0..x1` (ends exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutoutRect {
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
}

impl CutoutRect {
    /// Covered pixels per channel.
    pub fn area(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }
}

/// What [`RandAugment::apply`] drew for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct RandAugmentDraw {
    /// The operations applied, in order, with their magnitudes.
    pub ops: Vec<(RandOp, f64)>,
    /// The Cutout rectangle, `None` when Cutout is off or drew a zero size.
    pub cutout: Option<CutoutRect>,
}

/// The rectangle of USB's `CutoutAbs(img, size)` for centre draws `(cx, cy)` (the values
/// `np.random.uniform(w)` and `np.random.uniform(h)` returned, in `(1, w]` and `(1, h]`):
/// `x0 = int(max(0, cx - size/2))`, `x1 = min(w, x0 + size)`, then Pillow's inclusive,
/// truncated `rectangle`, clipped to the image. Same for rows.
pub fn cutout_rect(h: usize, w: usize, size: f64, cx: f64, cy: f64) -> CutoutRect {
    let span = |centre: f64, n: usize| -> (usize, usize) {
        let a = (centre - size / 2.0).max(0.0) as usize; // Python int() of a non-negative
        let b = (n as f64).min(a as f64 + size) as usize; // Pillow truncates the corner
        (a.min(n), (b + 1).min(n)) // inclusive corner, clipped
    };
    let (x0, x1) = span(cx, w);
    let (y0, y1) = span(cy, h);
    CutoutRect { y0, y1, x0, x1 }
}

/// Fills `rect` of every channel `ch` with `fill[ch]`.
///
/// # Panics
/// If `img` does not hold `c * h * w` bytes, `fill` does not hold `c` values or the
/// rectangle leaves the image.
pub fn cutout(img: &mut [u8], c: usize, h: usize, w: usize, rect: CutoutRect, fill: &[u8]) {
    check_len("image", img.len(), c, h, w);
    assert_eq!(
        fill.len(),
        c,
        "cutout fill needs one value per channel ({c})"
    );
    assert!(
        rect.y1 <= h && rect.x1 <= w,
        "cutout {rect:?} outside {h}x{w}"
    );
    for ch in 0..c {
        for y in rect.y0..rect.y1 {
            let row = (ch * h + y) * w;
            img[row + rect.x0..row + rect.x1].fill(fill[ch]);
        }
    }
}

impl RandAugment {
    /// USB's setting: 3 ops from [`USB_OPS`], Cutout up to half the width in USB's colour.
    pub fn usb() -> Self {
        Self {
            num_ops: 3,
            ops: RandAugmentOps::Usb,
            cutout_max: 0.5,
            cutout_fill: None,
        }
    }

    /// The grey-image version: 3 ops from [`GREY_OPS`], Cutout up to half the width in grey
    /// 123 (see the [module docs](self)).
    pub fn grey() -> Self {
        Self {
            ops: RandAugmentOps::Grey,
            ..Self::usb()
        }
    }

    /// The Cutout colour for images of `channels` channels.
    ///
    /// # Errors
    /// When no colour is configured and `channels` is not 1 or 3, or the configured colour
    /// does not have one value per channel.
    pub fn fill_for(&self, channels: usize) -> Result<Vec<u8>> {
        match &self.cutout_fill {
            Some(f) if f.len() == channels => Ok(f.clone()),
            Some(f) => Err(DataError::Invalid(format!(
                "randaugment.cutout_fill {f:?} needs one value per channel ({channels})"
            ))),
            None => match channels {
                1 => Ok(vec![USB_CUTOUT_FILL_GREY]),
                3 => Ok(USB_CUTOUT_FILL.to_vec()),
                c => Err(DataError::Invalid(format!(
                    "randaugment: no default cutout_fill for {c}-channel images; set one"
                ))),
            },
        }
    }

    /// Checks the settings against images of `channels` channels.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the field: `cutout_max` outside `[0, 1]`, a missing or
    /// mis-sized Cutout colour, or Color / Contrast in the list for images that are neither
    /// grey nor RGB.
    pub fn validate(&self, channels: usize) -> Result<()> {
        if !(0.0..=1.0).contains(&self.cutout_max) {
            return Err(DataError::Invalid(format!(
                "randaugment.cutout_max = {} is not in [0, 1]",
                self.cutout_max
            )));
        }
        if self.cutout_max > 0.0 {
            self.fill_for(channels)?;
        }
        let needs_luma = self
            .ops
            .ops()
            .iter()
            .any(|o| matches!(o, RandOp::Color | RandOp::Contrast));
        if needs_luma && self.num_ops > 0 && channels != 1 && channels != 3 {
            return Err(DataError::Invalid(format!(
                "randaugment.ops = {:?} uses Color/Contrast, which need 1 or 3 channels \
                 (the images have {channels})",
                self.ops
            )));
        }
        Ok(())
    }

    /// Augments the `u8` CHW image `img` in place and returns what was drawn (see the
    /// [module docs](self) for the order of the draws).
    ///
    /// # Panics
    /// If `img` does not hold `c * h * w` bytes or the settings do not fit `c` (see
    /// [`RandAugment::validate`]).
    pub fn apply(
        &self,
        img: &mut [u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
    ) -> RandAugmentDraw {
        check_len("image", img.len(), c, h, w);
        let list = self.ops.ops();
        let mut ops = Vec::with_capacity(self.num_ops);
        if !list.is_empty() {
            let picks: Vec<RandOp> = (0..self.num_ops)
                .map(|_| list[rng.below(list.len())])
                .collect();
            let mut scratch = Vec::new();
            for op in picks {
                let (lo, hi) = op.range();
                let v = lo + (hi - lo) * rng.next_f64();
                op.apply(img, c, h, w, v, &mut scratch);
                ops.push((op, v));
            }
        }
        let mut rect = None;
        if self.cutout_max > 0.0 {
            let frac = rng.next_f64() * self.cutout_max;
            if frac > 0.0 {
                let size = frac * w as f64;
                // np.random.uniform(w) == uniform(low=w, high=1.0) = w + (1 - w) * U.
                let cx = w as f64 + (1.0 - w as f64) * rng.next_f64();
                let cy = h as f64 + (1.0 - h as f64) * rng.next_f64();
                let r = cutout_rect(h, w, size, cx, cy);
                let fill = self.fill_for(c).unwrap_or_else(|e| panic!("{e}"));
                cutout(img, c, h, w, r, &fill);
                rect = Some(r);
            }
        }
        RandAugmentDraw { ops, cutout: rect }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_lists_follow_usb() {
        assert_eq!(USB_OPS.len(), 14);
        assert_eq!(RandOp::Posterize.range(), (4.0, 8.0));
        assert_eq!(RandOp::Solarize.range(), (0.0, 256.0));
        assert_eq!(RandOp::Rotate.range(), (-30.0, 30.0));
        assert_eq!(RandOp::TranslateY.range(), (-0.3, 0.3));
        assert!(!GREY_OPS.contains(&RandOp::Color));
        assert_eq!(GREY_OPS.len() + 1, USB_OPS.len());
        for op in USB_NO_COLOR_OPS {
            assert!(USB_OPS.contains(&op));
        }
        assert!(!USB_NO_COLOR_OPS.contains(&RandOp::Solarize));
    }

    #[test]
    fn cutout_rect_reproduces_the_reference_arithmetic() {
        // w = h = 32, size = 0.25 * 32 = 8, centre (20.0, 5.5):
        // x0 = int(16.0) = 16, x1 = min(32, 24.0) -> columns 16..=24 (9 wide);
        // y0 = int(1.5) = 1, y1 = 9.0 -> rows 1..=9.
        let r = cutout_rect(32, 32, 8.0, 20.0, 5.5);
        assert_eq!(
            r,
            CutoutRect {
                y0: 1,
                y1: 10,
                x0: 16,
                x1: 25
            }
        );
        // Near the far border: centre 32 -> x0 = 28, x1 = min(32, 36) = 32 -> clipped to 31.
        let r = cutout_rect(32, 32, 8.0, 32.0, 1.0);
        assert_eq!((r.x0, r.x1, r.y0, r.y1), (28, 32, 0, 9));
        // A fractional size: 0.3 px covers one pixel (columns x0..=int(x0 + 0.3)).
        let r = cutout_rect(4, 4, 0.3, 2.0, 2.0);
        assert_eq!(r.area(), 1);
    }

    #[test]
    fn cutout_fills_every_channel_with_its_colour() {
        let mut img = vec![0u8; 3 * 2 * 3];
        cutout(
            &mut img,
            3,
            2,
            3,
            CutoutRect {
                y0: 1,
                y1: 2,
                x0: 1,
                x1: 3,
            },
            &USB_CUTOUT_FILL,
        );
        assert_eq!(
            img,
            [0, 0, 0, 0, 125, 125, 0, 0, 0, 0, 123, 123, 0, 0, 0, 0, 114, 114]
        );
    }

    #[test]
    fn apply_replays_its_draws() {
        // Replaying the draw log on a copy with the same ops gives the same image, and the
        // generator advances by n + 1 + 2 draws (ops, magnitudes, cutout size and centre).
        let (c, h, w) = (3, 8, 8);
        let src: Vec<u8> = (0..c * h * w).map(|i| (i * 53 % 251) as u8).collect();
        let ra = RandAugment::usb();
        for seed in 0..50 {
            let mut rng = Rng::new(seed);
            let mut img = src.clone();
            let draw = ra.apply(&mut img, c, h, w, &mut rng);
            assert_eq!(draw.ops.len(), 3);
            let mut replay = src.clone();
            let mut scratch = Vec::new();
            for &(op, v) in &draw.ops {
                let (lo, hi) = op.range();
                assert!((lo..hi).contains(&v), "{op:?} {v}");
                op.apply(&mut replay, c, h, w, v, &mut scratch);
            }
            let rect = draw.cutout.expect("cutout drawn");
            // Side < 0.5 * 8 = 4 px, so at most int(x0 + 3.99) - x0 + 1 = 4 columns.
            assert!(rect.x1 - rect.x0 <= 4 && rect.y1 - rect.y0 <= 4, "{rect:?}");
            cutout(&mut replay, c, h, w, rect, &USB_CUTOUT_FILL);
            assert_eq!(img, replay, "seed {seed}");
            // Same number of draws as a manual replay of the generator.
            let mut manual = Rng::new(seed);
            for _ in 0..3 {
                manual.below(14);
            }
            for _ in 0..3 {
                manual.next_f64();
            }
            manual.next_f64();
            manual.next_f64();
            manual.next_f64();
            assert_eq!(rng, manual);
        }
    }

    #[test]
    fn ops_are_drawn_uniformly_with_replacement() {
        let ra = RandAugment {
            cutout_max: 0.0,
            ..RandAugment::usb()
        };
        let mut counts = std::collections::HashMap::new();
        let mut rng = Rng::new(5);
        let mut repeats = 0;
        for _ in 0..7000 {
            let mut img = [9u8; 4];
            let d = ra.apply(&mut img, 1, 2, 2, &mut rng);
            assert!(d.cutout.is_none());
            repeats += (d.ops[0].0 == d.ops[1].0) as usize;
            for (op, _) in d.ops {
                *counts.entry(op).or_insert(0usize) += 1;
            }
        }
        assert_eq!(counts.len(), 14);
        for (&op, &n) in &counts {
            assert!((1300..1700).contains(&n), "{op:?}: {n}");
        }
        // With replacement: the first two picks coincide about 1/14 of the time.
        assert!((350..650).contains(&repeats), "{repeats}");
    }

    #[test]
    fn cutout_centre_follows_numpy_uniform_of_w() {
        // Centres are in (1, w]. With side s = 16 U and centre cx = 32 - 31 V, column 0 is
        // covered iff cx - s/2 < 1, i.e. 31 (1 - V) < 8 U: probability E[8U / 31] = 4/31 =
        // 0.129. (A centre uniform in [0, 32) would give 5/32 = 0.156.)
        let ra = RandAugment {
            num_ops: 0,
            ..RandAugment::grey()
        };
        let mut rng = Rng::new(3);
        let mut left = 0usize;
        let n = 20000;
        for _ in 0..n {
            let mut img = vec![0u8; 32 * 32];
            let r = ra.apply(&mut img, 1, 32, 32, &mut rng).cutout.unwrap();
            assert!(img.iter().all(|&v| v == 0 || v == USB_CUTOUT_FILL_GREY));
            assert_eq!(
                img.iter().filter(|&&v| v == USB_CUTOUT_FILL_GREY).count(),
                r.area()
            );
            assert!(r.x1 - r.x0 <= 16 && r.y1 - r.y0 <= 16, "{r:?}");
            left += (r.x0 == 0) as usize;
        }
        let p = left as f64 / n as f64;
        assert!((p - 4.0 / 31.0).abs() < 0.01, "{p}");
    }

    #[test]
    fn validate_names_the_field() {
        assert!(RandAugment::usb().validate(3).is_ok());
        assert!(RandAugment::grey().validate(1).is_ok());
        let e = RandAugment::usb().validate(2).unwrap_err().to_string();
        assert!(e.contains("cutout_fill"), "{e}");
        let bad = RandAugment {
            cutout_max: 1.5,
            ..RandAugment::usb()
        };
        assert!(bad
            .validate(3)
            .unwrap_err()
            .to_string()
            .contains("cutout_max = 1.5"));
        let bad = RandAugment {
            cutout_fill: Some(vec![1, 2]),
            ..RandAugment::usb()
        };
        assert!(bad.validate(3).unwrap_err().to_string().contains("[1, 2]"));
        let two = RandAugment {
            cutout_fill: Some(vec![0, 0]),
            ..RandAugment::usb()
        };
        assert!(two
            .validate(2)
            .unwrap_err()
            .to_string()
            .contains("Color/Contrast"));
        let t: RandAugment = toml::from_str("ops = \"grey\"").unwrap();
        assert_eq!(t, RandAugment::grey());
        assert!(toml::from_str::<RandAugment>("n = 3").is_err());
    }
}
