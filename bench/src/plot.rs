//! The report's line charts, drawn by plotters into SVG: one or more panels
//! side by side, a line with markers a series, and a legend on the right.
//!
//! plotters is built without a font feature, so it needs nothing but
//! crates.io (no system fonts, no freetype): text goes into the SVG as
//! `<text>` for the viewer to render. What is ours is the choice of axes and
//! ticks: log axes are drawn as linear axes over log10 of the values, so
//! every panel has one coordinate type whatever its scales, with the ticks
//! placed and labelled here.

use std::ops::Range;

use anyhow::anyhow;
use plotters::{
    coord::{
        Shift,
        ranged1d::{DefaultFormatting, KeyPointHint},
    },
    element::DashedPathElement,
    prelude::*,
};

/// Size of a panel and of the legend, in pixels.
const PANEL_WIDTH: u32 = 620;
const HEIGHT: u32 = 540;
const LEGEND_WIDTH: u32 = 320;
const FONT: &str = "sans-serif";

/// How data values map onto an axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    Linear,
    /// Powers evenly spaced (values > 0).
    Log,
}

impl Scale {
    /// A value's position on the drawn (linear) axis.
    fn axis_position(self, v: f64) -> f64 {
        match self {
            Scale::Linear => v,
            Scale::Log => v.max(f64::MIN_POSITIVE).log10(),
        }
    }

    /// The value at a position of the drawn axis.
    fn value_at(self, a: f64) -> f64 {
        match self {
            Scale::Linear => a,
            Scale::Log => 10f64.powf(a),
        }
    }
}

/// One axis: its label, scale and ticks (in data units). The axis spans
/// the first to the last tick.
#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    pub ticks: Vec<f64>,
}

impl Axis {
    /// A linear axis from zero to a round number at or above `max`.
    pub fn linear_from_zero(label: impl Into<String>, max: f64) -> Self {
        Self {
            label: label.into(),
            scale: Scale::Linear,
            ticks: nice_ticks(0.0, if max > 0.0 { max } else { 1.0 }, 6),
        }
    }

    /// A log axis covering `min..=max` on whole decades (1-2-5 steps when
    /// the data spans about two decades or less).
    pub fn log_covering(label: impl Into<String>, min: f64, max: f64) -> Self {
        Self {
            label: label.into(),
            scale: Scale::Log,
            ticks: log_ticks(min, max),
        }
    }

    /// The drawn range, with `pad` (a fraction of it) added at both ends.
    fn range(&self, pad: f64) -> Range<f64> {
        let ends = self
            .ticks
            .iter()
            .map(|&t| self.scale.axis_position(t))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), t| {
                (lo.min(t), hi.max(t))
            });
        let (lo, hi) = if ends.0.is_finite() && ends.1 > ends.0 {
            ends
        } else if ends.0.is_finite() {
            (ends.0 - 1.0, ends.0 + 1.0)
        } else {
            (0.0, 1.0)
        };
        let pad = (hi - lo) * pad;
        (lo - pad)..(hi + pad)
    }
}

/// A linear plotters axis over `range` whose grid lines and labels are at
/// `ticks` (both in drawn units, log10 on a log axis): plotters's own f64
/// axes choose their ticks themselves, and its key-point wrapper drops the
/// custom label formatter this needs.
struct Ticked {
    range: Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let fraction = if span > 0.0 {
            (value - self.range.start) / span
        } else {
            0.5
        };
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

/// How a series's line is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stroke {
    Solid,
    Dashed,
    Dotted,
}

/// One line of a panel.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub stroke: Stroke,
    /// (x, y) in data units, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a titled plot area with two axes.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    /// Padding of the x axis, a fraction of its range at each end (so
    /// points at the first and last tick are not on the frame).
    pub x_pad: f64,
    pub series: Vec<Series>,
}

/// The panels side by side under `title`, as a standalone SVG document.
/// The legend lists the first panel's series (the panels share them).
pub fn render(title: &str, panels: &[Chart]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let count = u32::try_from(panels.len().max(1))?;
        let width = PANEL_WIDTH * count + LEGEND_WIDTH;
        let root = SVGBackend::with_string(&mut svg, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let root = root.titled(title, (FONT, 26)).map_err(drawing)?;
        let (plots, legend) = root.split_horizontally(PANEL_WIDTH * count);
        for (area, chart) in plots
            .split_evenly((1, panels.len().max(1)))
            .iter()
            .zip(panels)
        {
            draw_panel(area, chart)?;
        }
        if let Some(first) = panels.first() {
            draw_legend(&legend, &first.series)?;
        }
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn drawing(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {e}")
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
) -> anyhow::Result<()> {
    let (xs, ys) = (chart.x.scale, chart.y.scale);
    let key = |axis: &Axis| -> Vec<f64> {
        axis.ticks
            .iter()
            .map(|&t| axis.scale.axis_position(t))
            .collect()
    };
    let ticked = |axis: &Axis, pad| Ticked {
        range: axis.range(pad),
        ticks: key(axis),
    };
    let mut cc = ChartBuilder::on(area)
        .caption(&chart.title, (FONT, 21))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(ticked(&chart.x, chart.x_pad), ticked(&chart.y, 0.0))
        .map_err(drawing)?;
    cc.configure_mesh()
        .x_desc(chart.x.label.as_str())
        .y_desc(chart.y.label.as_str())
        .x_label_formatter(&|a| format_tick(xs.value_at(*a)))
        .y_label_formatter(&|a| format_tick(ys.value_at(*a)))
        .bold_line_style(RGBColor(0xe5, 0xe5, 0xe5))
        .light_line_style(TRANSPARENT)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(drawing)?;
    for s in &chart.series {
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|&(x, y)| (xs.axis_position(x), ys.axis_position(y)))
            .collect();
        let style = s.color.stroke_width(2);
        match s.stroke {
            Stroke::Solid => cc
                .draw_series(LineSeries::new(points.clone(), style))
                .map(drop),
            Stroke::Dashed => cc
                .draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))
                .map(drop),
            Stroke::Dotted => cc
                .draw_series(DashedLineSeries::new(points.clone(), 2, 4, style))
                .map(drop),
        }
        .map_err(drawing)?;
        cc.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3.5, s.color.filled())),
        )
        .map_err(drawing)?;
    }
    Ok(())
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[Series],
) -> anyhow::Result<()> {
    for (i, s) in series.iter().enumerate() {
        let y = 60 + 22 * i32::try_from(i)?;
        let line = vec![(10, y), (44, y)];
        let style = s.color.stroke_width(2);
        match s.stroke {
            Stroke::Solid => area.draw(&PathElement::new(line, style)),
            Stroke::Dashed => area.draw(&DashedPathElement::new(line, 8, 5, style)),
            Stroke::Dotted => area.draw(&DashedPathElement::new(line, 2, 4, style)),
        }
        .map_err(drawing)?;
        area.draw(&Text::new(
            s.label.clone(),
            (52, y - 7),
            (FONT, 16).into_font().color(&BLACK),
        ))
        .map_err(drawing)?;
    }
    Ok(())
}

/// Round tick values (1, 2 or 5 times a power of ten apart) covering
/// `min..=max` with about `target` intervals.
pub fn nice_ticks(min: f64, max: f64, target: usize) -> Vec<f64> {
    let span = (max - min).abs().max(f64::EPSILON);
    let raw = span / target.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let first = (min / step).floor();
    (0..)
        .map(|i| tidy((first + f64::from(i)) * step))
        .take_while(|t| *t < max + step * 0.999)
        .collect()
}

/// Ticks of a log axis covering `min..=max`: whole decades, or 1-2-5 steps
/// when the data spans two decades or less.
pub fn log_ticks(min: f64, max: f64) -> Vec<f64> {
    let min = if min > 0.0 && min.is_finite() {
        min
    } else {
        1e-3
    };
    let max = if max.is_finite() { max.max(min) } else { min };
    let lo = 10f64.powf(min.log10().floor());
    let hi = 10f64.powf(max.log10().ceil()).max(lo * 10.0);
    let decades = (hi / lo).log10().round() as i32;
    let steps: &[f64] = if decades <= 2 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut ticks = Vec::new();
    let mut decade = lo;
    while decade <= hi * 1.000_001 {
        for step in steps {
            let t = decade * step;
            if t <= hi * 1.000_001 {
                ticks.push(tidy(t));
            }
        }
        decade *= 10.0;
    }
    ticks
}

/// Rounds away binary noise such as 0.6000000000000001.
fn tidy(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// A tick label: whole thousands as `12k`, other integers plainly, small
/// values with the decimals they need.
pub fn format_tick(v: f64) -> String {
    let v = tidy(v);
    if v >= 1000.0 && (v / 1000.0).fract() == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_whole_decades_or_one_two_five_steps() {
        let ticks = log_ticks(0.3, 80.0);
        assert_eq!(ticks, vec![0.1, 1.0, 10.0, 100.0]);
        assert_eq!(
            log_ticks(2.0, 40.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        // Nothing measured: still an axis.
        assert!(!log_ticks(f64::INFINITY, 0.0).is_empty());
    }

    #[test]
    fn nice_ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 9500.0, 6),
            vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let axis = Axis::linear_from_zero("y", 0.0);
        assert_eq!(axis.ticks.first().copied(), Some(0.0));
        assert_eq!(axis.range(0.0), 0.0..1.0);
    }

    #[test]
    fn log_axes_are_drawn_over_log10_of_the_values() {
        let axis = Axis::log_covering("x", 1.0, 64.0);
        let range = axis.range(0.0);
        assert!((range.start - 0.0).abs() < 1e-12 && (range.end - 2.0).abs() < 1e-12);
        assert!((Scale::Log.value_at(Scale::Log.axis_position(64.0)) - 64.0).abs() < 1e-9);
        assert_eq!(format_tick(Scale::Log.value_at(1.0)), "10");
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_tick(20000.0), "20k");
        assert_eq!(format_tick(1000.0), "1k");
        assert_eq!(format_tick(1500.0), "1500");
        assert_eq!(format_tick(8.0), "8");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(2.5), "2.5");
        assert_eq!(format_tick(9.999999999999998), "10");
    }

    #[test]
    fn render_draws_every_series_and_escapes_text() {
        let series = |label: &str, stroke, points| Series {
            label: label.into(),
            color: RGBColor(0x1f, 0x77, 0xb4),
            stroke,
            points,
        };
        let chart = Chart {
            title: "a < b & c".into(),
            x: Axis {
                label: "clients".into(),
                scale: Scale::Log,
                ticks: vec![16.0, 64.0],
            },
            y: Axis::linear_from_zero("req/s", 950.0),
            x_pad: 0.05,
            series: vec![
                series(
                    "solid one",
                    Stroke::Solid,
                    vec![(16.0, 100.0), (64.0, 900.0)],
                ),
                series(
                    "dashed two",
                    Stroke::Dashed,
                    vec![(16.0, 500.0), (64.0, 400.0)],
                ),
                series(
                    "dotted three",
                    Stroke::Dotted,
                    vec![(16.0, 50.0), (64.0, 40.0)],
                ),
            ],
        };
        let svg = render("whole", &[chart.clone(), chart]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{svg}"
        );
        // plotters writes a text node's content on a line of its own.
        let text = |t: &str| svg.contains(&format!(">\n{t}\n</text>"));
        assert!(text("a &lt; b &amp; c"));
        for label in [
            "solid one",
            "dashed two",
            "dotted three",
            "whole",
            "req/s",
            "clients",
        ] {
            assert!(text(label), "{label}");
        }
        // A marker a point in each panel; the lines in the series's colour:
        // a solid one a panel and one a legend entry, more for the dashes.
        assert_eq!(svg.matches("<circle").count(), 12);
        let lines = svg
            .matches(r##"stroke="#1F77B4" stroke-width="2""##)
            .count();
        assert!(lines > 2 + 3 + 10, "{lines}");
        // Tick labels in data units, not log10.
        assert!(text("16") && text("64") && text("800"));
    }
}
