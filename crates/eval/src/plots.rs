//! Plots for evaluation reports: ROC curves of several detectors, and ID-vs-OOD score
//! histograms. Each plot is written twice, as `<stem>.svg` and `<stem>.png`
//! ([`PLOT_SIZE`] pixels).
//!
//! * [`roc_plot`]: one line per [`RocCurve`] (OOD positive, as [`crate::metrics::auroc`]
//!   and [`crate::metrics::fpr_at_tpr`]), the chance diagonal, and each detector's AUROC
//!   in percent in the legend, e.g. `knn (99.89)`.
//! * [`score_histogram`]: one detector's ID scores and the scores of one or more OOD sets,
//!   over shared bins, as densities (so sets of different sizes compare), semi-transparent.
//!
//! Text is laid out, and drawn into the PNG, with DejaVu Sans embedded in the crate
//! (`assets/DejaVuSans-Subset.ttf`, Bitstream Vera licence, see `assets/README.md`), so
//! the result does not depend on the fonts of the machine. SVG text names the generic
//! `sans-serif` family and is drawn by the viewer. The same input always gives the same
//! bytes, SVG and PNG alike.
//!
//! ```no_run
//! use std::path::Path;
//! use unseen_eval::plots::{roc_plot, score_histogram, RocCurve};
//!
//! let (id, near, far) = (vec![0.9f32, 0.8, 0.7], vec![0.6f32, 0.75], vec![0.1f32, 0.2]);
//! let curves = [RocCurve::new("msp", &id, &near)?];
//! roc_plot("CIFAR-10 vs CIFAR-100", &curves, Path::new("out/roc_cifar100"))?;
//! score_histogram(
//!     "CIFAR-10, MSP",
//!     "msp",
//!     &id,
//!     &[("cifar100", &near), ("svhn", &far)],
//!     Path::new("out/hist_msp"),
//! )?;
//! # Ok::<(), unseen_eval::EvalError>(())
//! ```

use std::ffi::OsString;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use plotters::style::{register_font, FontStyle};
// Not `BackendStyle` by name: its `stroke_width` would shadow `Color::stroke_width`.
use plotters_backend::{BackendColor, BackendCoord, BackendTextStyle, DrawingErrorKind};

use crate::error::{EvalError, Result, ScoreSet};
use crate::metrics::{check_scores, RankedScores};

/// Width and height of every plot, in pixels (the PNG's size and the SVG's canvas).
pub const PLOT_SIZE: (u32, u32) = (800, 600);

/// Number of bins of [`score_histogram`].
pub const HISTOGRAM_BINS: usize = 50;

/// ROC curves with more points than this are simplified before drawing (see [`roc_plot`]).
pub const MAX_CURVE_POINTS: usize = 2_000;

/// How far (in axis units, both axes spanning 1) a simplified ROC curve may stray from the
/// exact one: about a third of a pixel at [`PLOT_SIZE`].
const CURVE_TOLERANCE: f64 = 5e-4;

/// The embedded font; see `assets/README.md`.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-Subset.ttf");

/// The family every text of a plot uses: plotters' name for its default family, and a
/// generic family an SVG viewer understands.
const FAMILY: &str = "sans-serif";

/// Line colours, in order (matplotlib's `tab10`).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Opacity of the histogram fills.
const FILL_OPACITY: f64 = 0.3;

/// One detector's ROC curve, with OOD as the positive class, and its AUROC: one line of
/// [`roc_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct RocCurve {
    label: String,
    points: Vec<(f64, f64)>,
    auroc: f64,
}

impl RocCurve {
    /// The ROC curve of `id_scores` against `ood_scores` (see
    /// [`crate::metrics::roc_curve`]), named `label` (usually the detector).
    ///
    /// # Errors
    /// Empty or non-finite scores (see [`RankedScores::new`]).
    pub fn new(label: impl Into<String>, id_scores: &[f32], ood_scores: &[f32]) -> Result<Self> {
        Ok(Self::from_ranked(
            label,
            &RankedScores::new(id_scores, ood_scores)?,
        ))
    }

    /// As [`RocCurve::new`], from scores already sorted for the metrics.
    pub fn from_ranked(label: impl Into<String>, ranked: &RankedScores) -> Self {
        Self {
            label: label.into(),
            points: ranked.roc_curve(),
            auroc: ranked.auroc(),
        }
    }

    /// The name given to [`RocCurve::new`].
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The exact curve, `(fpr, tpr)` from `(0, 0)` to `(1, 1)`, one point per threshold.
    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    /// Area under the curve, as [`crate::metrics::auroc`].
    pub fn auroc(&self) -> f64 {
        self.auroc
    }

    /// The curve's legend entry: its label and AUROC in percent, e.g. `knn (99.89)`.
    pub fn legend_label(&self) -> String {
        format!("{} ({:.2})", self.label, 100.0 * self.auroc)
    }
}

/// Draws ROC curves (FPR on x, TPR on y, OOD positive) into one plot and writes it as
/// `<path_stem>.svg` and `<path_stem>.png`; returns the two paths, SVG first.
///
/// The extensions are appended, so a stem may contain dots (`roc.cifar10` gives
/// `roc.cifar10.svg`); missing parent folders are created, existing files replaced. Each
/// curve gets its own colour (ten, then they repeat) and a legend entry with its AUROC in
/// percent ([`RocCurve::legend_label`]); a dashed diagonal marks chance. A curve of more
/// than [`MAX_CURVE_POINTS`] points is simplified first (Ramer–Douglas–Peucker, kept within
/// about a third of a pixel of the exact curve), which keeps the SVG small; the AUROC in
/// the legend is the exact one.
///
/// # Errors
/// [`EvalError::Empty`] if `curves` is empty, [`EvalError::PlotWrite`] (naming the file or
/// folder) if writing fails, [`EvalError::Plot`] if the plotting library fails.
pub fn roc_plot(title: &str, curves: &[RocCurve], path_stem: &Path) -> Result<Vec<PathBuf>> {
    if curves.is_empty() {
        return Err(EvalError::Empty {
            what: "list of ROC curves",
        });
    }
    let lines = curves
        .iter()
        .map(|curve| {
            let points = if curve.points.len() > MAX_CURVE_POINTS {
                simplify_curve(&curve.points, CURVE_TOLERANCE)
            } else {
                curve.points.clone()
            };
            (curve.legend_label(), points)
        })
        .collect();
    save(&RocFigure { title, lines }, path_stem)
}

/// Draws one detector's score histograms, ID and each OOD set overlaid, and writes them as
/// `<path_stem>.svg` and `<path_stem>.png` (as [`roc_plot`]); returns the two paths, SVG
/// first.
///
/// All sets share [`HISTOGRAM_BINS`] bins spanning the pooled minimum to maximum of every
/// score (one unit wide around the value if all scores are equal). Each set is drawn as a
/// density (count over set size and bin width), so sets of different sizes compare, filled
/// semi-transparent with a solid outline; the legend gives each set's size. `detector`
/// names the x axis, `ood_sets` are `(name, scores)` pairs.
///
/// # Errors
/// [`EvalError::EmptyScores`] or [`EvalError::NonFiniteScore`] for bad ID scores, the same
/// wrapped in [`EvalError::InOodSet`] (naming the set) for bad OOD scores,
/// [`EvalError::Empty`] if `ood_sets` is empty, and the write errors of [`roc_plot`].
pub fn score_histogram<S: AsRef<str>, V: AsRef<[f32]>>(
    title: &str,
    detector: &str,
    id_scores: &[f32],
    ood_sets: &[(S, V)],
    path_stem: &Path,
) -> Result<Vec<PathBuf>> {
    check_scores(ScoreSet::Id, id_scores)?;
    if ood_sets.is_empty() {
        return Err(EvalError::Empty {
            what: "list of OOD score sets",
        });
    }
    for (name, scores) in ood_sets {
        check_scores(ScoreSet::Ood, scores.as_ref()).map_err(|error| EvalError::InOodSet {
            name: name.as_ref().to_owned(),
            error: Box::new(error),
        })?;
    }
    let score_sets: Vec<&[f32]> = std::iter::once(id_scores)
        .chain(ood_sets.iter().map(|(_, scores)| scores.as_ref()))
        .collect();
    let names = std::iter::once("ID").chain(ood_sets.iter().map(|(name, _)| name.as_ref()));
    let (range, densities) = histogram_densities(&score_sets);
    let sets = names
        .zip(&score_sets)
        .zip(densities)
        .map(|((name, scores), d)| (format!("{name} (n={})", scores.len()), d))
        .collect();
    let figure = HistogramFigure {
        title,
        x_desc: format!("{detector} score (higher = more in-distribution)"),
        range,
        sets,
    };
    save(&figure, path_stem)
}

/// The shared bin range (pooled min to max, widened to one unit if it is a single value)
/// and, per set, the density of each of the [`HISTOGRAM_BINS`] bins (count over set size
/// and bin width; the last bin includes the maximum). Sets must be non-empty and finite.
fn histogram_densities(sets: &[&[f32]]) -> ((f64, f64), Vec<Vec<f64>>) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &s in sets.iter().flat_map(|scores| scores.iter()) {
        lo = lo.min(f64::from(s));
        hi = hi.max(f64::from(s));
    }
    if lo == hi {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let width = (hi - lo) / HISTOGRAM_BINS as f64;
    let densities = sets
        .iter()
        .map(|scores| {
            let mut counts = [0usize; HISTOGRAM_BINS];
            for &s in scores.iter() {
                let bin = ((f64::from(s) - lo) / width) as usize;
                counts[bin.min(HISTOGRAM_BINS - 1)] += 1;
            }
            let scale = 1.0 / (scores.len() as f64 * width);
            counts.iter().map(|&c| c as f64 * scale).collect()
        })
        .collect();
    ((lo, hi), densities)
}

/// A plot that can be drawn on any plotters backend (the SVG and the bitmap one).
trait Figure {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

/// What [`roc_plot`] draws: a title and `(legend label, points)` per curve.
struct RocFigure<'a> {
    title: &'a str,
    lines: Vec<(String, Vec<(f64, f64)>)>,
}

impl Figure for RocFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FAMILY, 22))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("False positive rate (ID flagged as OOD)")
            .y_desc("True positive rate (OOD detected)")
            .x_labels(11)
            .y_labels(11)
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .max_light_lines(0)
            .bold_line_style(BLACK.mix(0.1))
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .draw()?;
        chart.draw_series(std::iter::once(DashedPathElement::new(
            [(0.0, 0.0), (1.0, 1.0)],
            6,
            5,
            BLACK.mix(0.45).stroke_width(1),
        )))?;
        for (i, (label, points)) in self.lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(std::iter::once(PathElement::new(
                    points.clone(),
                    color.stroke_width(2),
                )))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 22, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .margin(12)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font((FAMILY, 14))
            .draw()?;
        Ok(())
    }
}

/// What [`score_histogram`] draws: densities per set over shared bins of `range`.
struct HistogramFigure<'a> {
    title: &'a str,
    x_desc: String,
    range: (f64, f64),
    /// `(legend label, density per bin)`, ID first.
    sets: Vec<(String, Vec<f64>)>,
}

impl Figure for HistogramFigure<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let (lo, hi) = self.range;
        let width = (hi - lo) / HISTOGRAM_BINS as f64;
        let peak = self
            .sets
            .iter()
            .flat_map(|(_, d)| d.iter().copied())
            .fold(0.0, f64::max);
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FAMILY, 22))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(70)
            // Headroom above the highest bar for the legend.
            .build_cartesian_2d(lo..hi, 0.0..peak * 1.3)?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc("Density")
            .max_light_lines(0)
            .bold_line_style(BLACK.mix(0.1))
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 15))
            .draw()?;
        for (i, (label, densities)) in self.sets.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let fill = color.mix(FILL_OPACITY).filled();
            let left = |b: usize| lo + b as f64 * width;
            // Empty bins draw nothing, which keeps the SVG small.
            chart.draw_series(
                densities
                    .iter()
                    .enumerate()
                    .filter(|&(_, &d)| d > 0.0)
                    .map(|(b, &d)| Rectangle::new([(left(b), 0.0), (left(b + 1), d)], fill)),
            )?;
            // The outline as one step path, so that overlapping fills stay readable.
            let mut outline = vec![(lo, 0.0)];
            for (b, &d) in densities.iter().enumerate() {
                outline.push((left(b), d));
                outline.push((left(b + 1), d));
            }
            outline.push((hi, 0.0));
            chart
                .draw_series(std::iter::once(PathElement::new(
                    outline,
                    color.stroke_width(2),
                )))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + Rectangle::new([(0, -6), (22, 6)], fill)
                        + Rectangle::new([(0, -6), (22, 6)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .margin(12)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .label_font((FAMILY, 14))
            .draw()?;
        Ok(())
    }
}

/// Draws `figure` as SVG and PNG and writes both next to `stem`; returns their paths.
fn save(figure: &impl Figure, stem: &Path) -> Result<Vec<PathBuf>> {
    let svg_path = with_suffix(stem, ".svg");
    let png_path = with_suffix(stem, ".png");
    register_embedded_font(&svg_path)?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT_SIZE).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| plot_error(&svg_path, e))?;
    }
    let (w, h) = PLOT_SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let root = PngCanvas(BitMapBackend::with_buffer(&mut rgb, PLOT_SIZE)).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| plot_error(&png_path, e))?;
    }
    let png = encode_png(&rgb, PLOT_SIZE).map_err(|e| plot_error(&png_path, e))?;

    if let Some(parent) = svg_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| EvalError::PlotWrite {
            path: parent.to_owned(),
            source,
        })?;
    }
    for (path, bytes) in [(&svg_path, svg.as_bytes()), (&png_path, png.as_slice())] {
        std::fs::write(path, bytes).map_err(|source| EvalError::PlotWrite {
            path: path.clone(),
            source,
        })?;
    }
    Ok(vec![svg_path, png_path])
}

/// `stem` with `suffix` appended (not substituted for an extension: stems may hold dots).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(stem.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

fn plot_error(path: &Path, error: impl Display) -> EvalError {
    EvalError::Plot {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// [`FONT`], parsed once, for [`PngCanvas`].
fn embedded_font() -> &'static FontRef<'static> {
    static PARSED: OnceLock<FontRef<'static>> = OnceLock::new();
    // Cannot fail once `register_embedded_font` has succeeded (the same bytes, parsed the
    // same way), and it runs first.
    PARSED.get_or_init(|| FontRef::try_from_slice(FONT).expect("the embedded font parses"))
}

/// plotters' bitmap backend with its own text drawing.
///
/// plotters 0.3.7 draws `ab_glyph` text with each glyph's left side bearing dropped and at
/// whole-pixel pen positions, which spaces letters unevenly ("posit ive"). This draws the
/// same text in the same layout box (plotters' estimate, which also placed it), glyphs at
/// their exact sub-pixel positions, with the capital height centred in the box. Everything
/// else is the bitmap backend's.
struct PngCanvas<'a>(BitMapBackend<'a>);

impl<'a> DrawingBackend for PngCanvas<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: plotters_backend::BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: plotters_backend::BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (w, h): (u32, u32),
        src: &[u8],
    ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.0.blit_bitmap(pos, (w, h), src)
    }

    /// As the default `draw_text` (same anchoring and rotation), with [`embedded_font`]
    /// (the only family the plots use) drawn by `ab_glyph` directly.
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let transform = style.transform();
        let (w, h) = self.get_size();

        let font = embedded_font().as_scaled(style.size() as f32);
        let cap_height = font
            .font()
            .outline(font.glyph_id('H'))
            // `H` stands on the baseline; its bounds' y order is ab_glyph's business.
            .map_or(0.6 * font.height(), |o| {
                (o.bounds.max.y - o.bounds.min.y).abs() * font.v_scale_factor()
            });
        let baseline = (height as f32 + cap_height) / 2.0;
        let mut pen = 0.0f32;
        let mut previous = None;
        let mut pixels = Vec::new();
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(previous) = previous {
                pen += font.kern(previous, id);
            }
            previous = Some(id);
            let glyph = id.with_scale_and_position(font.scale(), ab_glyph::point(pen, baseline));
            pen += font.h_advance(id);
            let Some(outline) = font.outline_glyph(glyph) else {
                continue;
            };
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i32, bounds.min.y as i32);
            outline.draw(|x, y, coverage| {
                pixels.push((left + x as i32, top + y as i32, coverage.min(1.0)));
            });
        }
        for (x, y, coverage) in pixels {
            let (x, y) = transform.transform(x + dx - min_x, y + dy - min_y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                self.0.draw_pixel((x, y), color.mix(f64::from(coverage)))?;
            }
        }
        Ok(())
    }
}

/// Registers [`FONT`] as [`FAMILY`] with plotters, once per process.
fn register_embedded_font(path: &Path) -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(plot_error(path, "the embedded font could not be read"))
    }
}

/// Encodes an RGB8 buffer as PNG.
fn encode_png(rgb: &[u8], (w, h): (u32, u32)) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// Ramer–Douglas–Peucker: the subset of `points` (first and last always kept) whose
/// polyline passes within `tolerance` of every dropped point.
fn simplify_curve(points: &[(f64, f64)], tolerance: f64) -> Vec<(f64, f64)> {
    let n = points.len();
    if n <= 2 {
        return points.to_vec();
    }
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[n - 1] = true;
    let mut spans = vec![(0, n - 1)];
    while let Some((a, b)) = spans.pop() {
        let (mut far, mut far_distance) = (a, tolerance);
        for i in a + 1..b {
            let d = segment_distance(points[i], points[a], points[b]);
            if d > far_distance {
                (far, far_distance) = (i, d);
            }
        }
        if far != a {
            keep[far] = true;
            spans.push((a, far));
            spans.push((far, b));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter_map(|(&p, k)| k.then_some(p))
        .collect()
}

/// Distance from `p` to the segment `a`–`b`.
fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length_sq = dx * dx + dy * dy;
    let t = if length_sq > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length_sq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p.0 - a.0 - t * dx).hypot(p.1 - a.1 - t * dy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir, removed on drop (kept, and its path
    /// printed, when `UNSEEN_EVAL_KEEP_PLOTS` is set, to look at the plots).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("unseen-eval-plots-{}-{name}", std::process::id()));
            // A leftover of an earlier run with the same pid is stale.
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            if std::env::var_os("UNSEEN_EVAL_KEEP_PLOTS").is_some() {
                eprintln!("plots kept in {}", self.0.display());
            } else {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// `n` normal draws with the given mean and spread: Box-Muller on a 32-bit LCG, so
    /// the data are the same on every machine.
    fn normal(seed: u64, n: usize, mean: f32, std: f32) -> Vec<f32> {
        let mut x = seed;
        let mut uniform = move || {
            x = (1_664_525 * x + 1_013_904_223) % (1 << 32);
            ((x >> 8) as f64 + 0.5) / (1u64 << 24) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                let z = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
                mean + std * z as f32
            })
            .collect()
    }

    /// ID and two OOD sets of MSP-like scores in (0, 1]: a near set that overlaps the ID
    /// scores, a far one that mostly does not, and sizes that differ.
    fn msp_like() -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let squash =
            |v: Vec<f32>| -> Vec<f32> { v.into_iter().map(|z| 1.0 / (1.0 + (-z).exp())).collect() };
        (
            squash(normal(1, 1000, 3.0, 1.2)),
            squash(normal(2, 600, 1.5, 1.2)),
            squash(normal(3, 1500, -0.5, 1.0)),
        )
    }

    /// Decodes a PNG, checks its size and that it is not a blank canvas; returns the
    /// number of distinct colours.
    fn check_png(path: &Path) -> usize {
        let img = image::open(path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), PLOT_SIZE, "{}", path.display());
        let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        let non_white = colours.iter().filter(|c| **c != [255; 3]).count();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() >= 16,
            "{}: only {} colours",
            path.display(),
            colours.len()
        );
        // Axes, text and data cover a fair part of the canvas, but not all of it.
        let total = (PLOT_SIZE.0 * PLOT_SIZE.1) as usize;
        assert!(
            non_white > total / 100 && non_white < total / 2,
            "{}: {non_white} non-white pixels",
            path.display()
        );
        colours.len()
    }

    fn has_colour(path: &Path, colour: RGBColor) -> bool {
        let img = image::open(path).unwrap().to_rgb8();
        img.pixels().any(|p| p.0 == [colour.0, colour.1, colour.2])
    }

    fn roc_curves() -> Vec<RocCurve> {
        let (id, near, far) = msp_like();
        vec![
            RocCurve::new("msp near", &id, &near).unwrap(),
            RocCurve::new("msp far", &id, &far).unwrap(),
        ]
    }

    #[test]
    fn roc_plot_writes_svg_and_png() {
        let dir = TempDir::new("roc");
        let curves = roc_curves();
        let stem = dir.0.join("sub").join("roc.cifar10");
        let paths = roc_plot("CIFAR-10 vs near and far OOD", &curves, &stem).unwrap();
        assert_eq!(
            paths,
            [
                dir.0.join("sub/roc.cifar10.svg"),
                dir.0.join("sub/roc.cifar10.png")
            ]
        );
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        for curve in &curves {
            let label = curve.legend_label();
            assert!(
                svg.contains(&label),
                "legend `{label}` missing from the SVG"
            );
        }
        assert!(svg.contains("False positive rate") && svg.contains("CIFAR-10 vs near"));
        // Near OOD is harder than far OOD.
        assert!(curves[0].auroc() < curves[1].auroc() && curves[1].auroc() > 0.95);
        check_png(&paths[1]);
        // Each curve is drawn in its own full colour.
        assert!(has_colour(&paths[1], PALETTE[0]) && has_colour(&paths[1], PALETTE[1]));
    }

    #[test]
    fn score_histogram_writes_svg_and_png() {
        let dir = TempDir::new("hist");
        let (id, near, far) = msp_like();
        let stem = dir.0.join("hist_msp");
        let paths = score_histogram(
            "CIFAR-10: MSP scores",
            "msp",
            &id,
            &[("cifar100", &near), ("svhn", &far)],
            &stem,
        )
        .unwrap();
        assert_eq!(
            paths,
            [dir.0.join("hist_msp.svg"), dir.0.join("hist_msp.png")]
        );
        let svg = std::fs::read_to_string(&paths[0]).unwrap();
        for label in ["ID (n=1000)", "cifar100 (n=600)", "svhn (n=1500)"] {
            assert!(svg.contains(label), "legend `{label}` missing from the SVG");
        }
        assert!(svg.contains("msp score (higher = more in-distribution)"));
        // Semi-transparent fills.
        assert!(svg.contains(&format!("opacity=\"{FILL_OPACITY}")));
        check_png(&paths[1]);
        // Owned names and scores work as well; a single-valued input gets a unit range.
        let owned = vec![("constant".to_owned(), vec![0.5f32; 3])];
        score_histogram("t", "d", &[0.5, 0.5], &owned, &dir.0.join("flat")).unwrap();
        check_png(&dir.0.join("flat.png"));
    }

    #[test]
    fn output_is_byte_identical_for_the_same_input() {
        let dir = TempDir::new("determinism");
        let curves = roc_curves();
        let (id, near, far) = msp_like();
        let sets = [("cifar100", &near), ("svhn", &far)];
        let mut outputs = Vec::new();
        for run in ["a", "b"] {
            let mut paths = roc_plot("t", &curves, &dir.0.join(format!("roc_{run}"))).unwrap();
            paths.extend(
                score_histogram("t", "msp", &id, &sets, &dir.0.join(format!("hist_{run}")))
                    .unwrap(),
            );
            outputs.push(
                paths
                    .iter()
                    .map(|p| std::fs::read(p).unwrap())
                    .collect::<Vec<_>>(),
            );
        }
        assert_eq!(outputs[0], outputs[1]);
    }

    #[test]
    fn long_curves_are_simplified_within_tolerance() {
        // 200k distinct scores per set: one ROC point per score.
        let id = normal(4, 200_000, 1.0, 1.0);
        let ood = normal(5, 200_000, 0.0, 1.0);
        let curve = RocCurve::new("energy", &id, &ood).unwrap();
        let exact = curve.points();
        assert!(exact.len() > 390_000);
        let simple = simplify_curve(exact, CURVE_TOLERANCE);
        assert!(
            simple.len() < MAX_CURVE_POINTS,
            "{} points left",
            simple.len()
        );
        assert_eq!(simple.first(), exact.first());
        assert_eq!(simple.last(), exact.last());
        // Every exact point lies within the tolerance of the simplified polyline (its
        // segments are monotone in fpr, so the nearest one is found by fpr).
        let mut segment = 0;
        for &p in exact {
            while segment + 2 < simple.len() && simple[segment + 1].0 < p.0 {
                segment += 1;
            }
            let d = (segment..(segment + 2).min(simple.len() - 1))
                .map(|s| segment_distance(p, simple[s], simple[s + 1]))
                .fold(f64::INFINITY, f64::min);
            assert!(d <= CURVE_TOLERANCE + 1e-12, "{p:?} is {d} away");
        }
        // The plot of the long curve stays small.
        let dir = TempDir::new("long");
        let paths = roc_plot("long", std::slice::from_ref(&curve), &dir.0.join("roc")).unwrap();
        let svg_len = std::fs::metadata(&paths[0]).unwrap().len();
        eprintln!(
            "{} of {} points kept, SVG {svg_len} bytes",
            simple.len(),
            exact.len()
        );
        assert!(svg_len < 100_000, "SVG of {svg_len} bytes");
        // Short curves are drawn as they are.
        let short = [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (1.0, 1.0)];
        // (0, 0.5) is 0.35 from the diagonal, (0.5, 0.5) then 0.22 from (0, 0.5)–(1, 1).
        assert_eq!(
            simplify_curve(&short, 0.3),
            [(0.0, 0.0), (0.0, 0.5), (1.0, 1.0)]
        );
        assert_eq!(simplify_curve(&short, 0.2), short);
        assert_eq!(simplify_curve(&short, 0.0), short);
    }

    #[test]
    fn histogram_densities_integrate_to_one() {
        let (id, near, far) = msp_like();
        let ((lo, hi), densities) = histogram_densities(&[&id, &near, &far]);
        let pooled = id.iter().chain(&near).chain(&far);
        assert_eq!(
            lo,
            f64::from(pooled.clone().copied().fold(f32::MAX, f32::min))
        );
        assert_eq!(hi, f64::from(pooled.copied().fold(f32::MIN, f32::max)));
        let width = (hi - lo) / HISTOGRAM_BINS as f64;
        for d in &densities {
            assert_eq!(d.len(), HISTOGRAM_BINS);
            assert!((d.iter().sum::<f64>() * width - 1.0).abs() < 1e-12);
        }
        // Bins by hand: range 0..10, width 0.2; 10 (the maximum) falls in the last bin.
        let ((lo, hi), d) = histogram_densities(&[&[0.0, 0.1, 10.0], &[5.0]]);
        assert_eq!((lo, hi), (0.0, 10.0));
        // Back to counts: density × set size × bin width.
        let counts = |set: &[f64], n: f64| -> Vec<(usize, f64)> {
            (0..HISTOGRAM_BINS)
                .filter(|&b| set[b] > 0.0)
                .map(|b| (b, (set[b] * n * 0.2 * 1e9).round() / 1e9))
                .collect()
        };
        assert_eq!(counts(&d[0], 3.0), [(0, 2.0), (49, 1.0)]);
        assert_eq!(counts(&d[1], 1.0), [(25, 1.0)]);
        // A single value gets a unit range around it.
        let ((lo, hi), d) = histogram_densities(&[&[2.0, 2.0], &[2.0]]);
        assert_eq!((lo, hi), (1.5, 2.5));
        assert_eq!(d[1][25], 50.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = TempDir::new("errors");
        assert!(matches!(
            RocCurve::new("msp", &[0.1, f32::NAN], &[0.2]),
            Err(EvalError::NonFiniteScore {
                set: ScoreSet::Id,
                index: 1,
                ..
            })
        ));
        assert!(matches!(
            roc_plot("t", &[], &dir.0.join("roc")),
            Err(EvalError::Empty { .. })
        ));
        let none: [(&str, &[f32]); 0] = [];
        assert!(matches!(
            score_histogram("t", "msp", &[0.1], &none, &dir.0.join("h")),
            Err(EvalError::Empty { .. })
        ));
        assert!(matches!(
            score_histogram("t", "msp", &[], &[("svhn", [0.1])], &dir.0.join("h")),
            Err(EvalError::EmptyScores { set: ScoreSet::Id })
        ));
        let err = score_histogram(
            "t",
            "msp",
            &[0.1],
            &[("cifar100", vec![0.2]), ("svhn", vec![0.3, f32::INFINITY])],
            &dir.0.join("h"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "OOD set `svhn`: OOD score at index 1 is inf: scores must be finite"
        );
        let err =
            score_histogram("t", "msp", &[0.1], &[("lsun", [])], &dir.0.join("h")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("OOD set `lsun`: the OOD score set is empty"));
        // Nothing was written for bad input.
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
    }

    #[test]
    fn write_failure_names_the_path() {
        let dir = TempDir::new("unwritable");
        // A file where the plot's folder should be.
        let blocker = dir.0.join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let err = roc_plot("t", &roc_curves(), &blocker.join("roc")).unwrap_err();
        assert!(matches!(err, EvalError::PlotWrite { ref path, .. } if *path == blocker));
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("could not write {}: ", blocker.display())),
            "{message}"
        );
        // A folder where the SVG file should be.
        std::fs::create_dir(dir.0.join("roc.svg")).unwrap();
        let err = roc_plot("t", &roc_curves(), &dir.0.join("roc")).unwrap_err();
        assert!(matches!(err, EvalError::PlotWrite { ref path, .. } if path.ends_with("roc.svg")));
    }
}
