//! Line charts as plain SVG: axes with ticks and labels, one polyline with
//! markers a series, and a legend. No plotting dependency.

use std::fmt::Write;

/// Canvas size and the plot area's margins, in pixels.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 540.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 300.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// How data values map onto an axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Evenly spaced values between `min` and `max`.
    Linear { min: f64, max: f64 },
    /// Evenly spaced powers between `min` and `max` (both > 0).
    Log { min: f64, max: f64 },
}

impl Scale {
    /// Where `v` falls between the ends, 0 at `min` and 1 at `max`.
    pub fn fraction(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear { min, max } => {
                if max > min {
                    (v - min) / (max - min)
                } else {
                    0.5
                }
            }
            Scale::Log { min, max } => {
                let (lo, hi, v) = (min.ln(), max.ln(), v.max(f64::MIN_POSITIVE).ln());
                if hi > lo { (v - lo) / (hi - lo) } else { 0.5 }
            }
        }
    }

    /// A linear scale from zero to a round number above `max`, and its ticks.
    pub fn linear_from_zero(max: f64) -> (Self, Vec<f64>) {
        let ticks = nice_ticks(0.0, if max > 0.0 { max } else { 1.0 }, 6);
        let top = ticks.last().copied().unwrap_or(1.0);
        (Scale::Linear { min: 0.0, max: top }, ticks)
    }

    /// A log scale covering `min..=max` on whole decades (or on 1-2-5 steps
    /// when the data spans less than about two decades), and its ticks.
    pub fn log_covering(min: f64, max: f64) -> (Self, Vec<f64>) {
        let min = if min > 0.0 { min } else { 1e-3 };
        let max = max.max(min);
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
        (Scale::Log { min: lo, max: hi }, ticks)
    }
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

/// Rounds away binary noise such as 0.6000000000000001.
fn tidy(v: f64) -> f64 {
    (v * 1e9).round() / 1e9
}

/// A tick label: whole thousands as `12k`, other integers plainly, small values with
/// the decimals they need.
pub fn format_tick(v: f64) -> String {
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

/// Escapes text for an SVG text node or attribute.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One axis.
#[derive(Clone, Debug)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    pub ticks: Vec<f64>,
}

/// One line of the chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    /// Any SVG colour, e.g. `#1f77b4`.
    pub color: String,
    pub dashed: bool,
    /// (x, y) in data units, drawn in the given order.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
}

impl Chart {
    fn px(&self, x: f64) -> f64 {
        LEFT + self.x.scale.fraction(x) * (WIDTH - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        HEIGHT - BOTTOM - self.y.scale.fraction(y) * (HEIGHT - TOP - BOTTOM)
    }

    /// The chart as a standalone SVG document.
    pub fn render(&self) -> String {
        let mut svg = String::new();
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        // Writing to a String cannot fail, hence the ignored results.
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            (x0 + x1) / 2.0,
            escape(&self.title)
        );
        // Grid lines and tick labels.
        for &t in &self.x.ticks {
            let x = self.px(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{y1}" stroke="#e5e5e5"/><line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="black"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                y0 + 5.0,
                y0 + 20.0,
                escape(&format_tick(t))
            );
        }
        for &t in &self.y.ticks {
            let y = self.py(t);
            let _ = writeln!(
                svg,
                r##"<line x1="{x0}" y1="{y:.1}" x2="{x1}" y2="{y:.1}" stroke="#e5e5e5"/><line x1="{}" y1="{y:.1}" x2="{x0}" y2="{y:.1}" stroke="black"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 - 5.0,
                x0 - 8.0,
                y + 4.0,
                escape(&format_tick(t))
            );
        }
        // Axes and their labels.
        let _ = writeln!(
            svg,
            r#"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 15.0,
            escape(&self.x.label)
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (y0 + y1) / 2.0,
            escape(&self.y.label)
        );
        // The series.
        for s in &self.series {
            let points: Vec<String> = s
                .points
                .iter()
                .map(|&(x, y)| format!("{:.1},{:.1}", self.px(x), self.py(y)))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                points.join(" "),
                escape(&s.color)
            );
            for &(x, y) in &s.points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"><title>{}: ({}, {})</title></circle>"#,
                    self.px(x),
                    self.py(y),
                    escape(&s.color),
                    escape(&s.label),
                    format_tick(x),
                    format_tick((y * 1000.0).round() / 1000.0)
                );
            }
        }
        // The legend, right of the plot area.
        let lx = x1 + 20.0;
        for (i, s) in self.series.iter().enumerate() {
            let y = TOP + 10.0 + i as f64 * 20.0;
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 30.0,
                escape(&s.color),
                lx + 38.0,
                y + 4.0,
                escape(&s.label)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_scale_maps_ends_to_zero_and_one() {
        let s = Scale::Linear {
            min: 0.0,
            max: 200.0,
        };
        assert_eq!(s.fraction(0.0), 0.0);
        assert_eq!(s.fraction(200.0), 1.0);
        assert_eq!(s.fraction(50.0), 0.25);
    }

    #[test]
    fn log_scale_spaces_decades_evenly() {
        let (s, ticks) = Scale::log_covering(0.3, 80.0);
        assert_eq!(
            s,
            Scale::Log {
                min: 0.1,
                max: 100.0
            }
        );
        assert!((s.fraction(1.0) - 1.0 / 3.0).abs() < 1e-9);
        assert!((s.fraction(10.0) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(ticks.first().copied(), Some(0.1));
        assert!((ticks.last().unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(
            ticks.len(),
            4,
            "whole decades over three decades: {ticks:?}"
        );
        let (_, ticks) = Scale::log_covering(2.0, 40.0);
        assert_eq!(ticks.len(), 7, "1-2-5 steps over two decades: {ticks:?}");
    }

    #[test]
    fn nice_ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 9500.0, 6),
            vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(nice_ticks(0.0, 1.0, 5), vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        let (scale, ticks) = Scale::linear_from_zero(0.0);
        assert_eq!(scale, Scale::Linear { min: 0.0, max: 1.0 });
        assert_eq!(ticks.first().copied(), Some(0.0));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(format_tick(20000.0), "20k");
        assert_eq!(format_tick(1000.0), "1k");
        assert_eq!(format_tick(1500.0), "1500");
        assert_eq!(format_tick(8.0), "8");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(2.5), "2.5");
    }

    #[test]
    fn render_escapes_text_and_draws_every_series() {
        let chart = Chart {
            title: "a < b & c".into(),
            x: Axis {
                label: "x".into(),
                scale: Scale::Linear {
                    min: 0.0,
                    max: 10.0,
                },
                ticks: vec![0.0, 10.0],
            },
            y: Axis {
                label: "y".into(),
                scale: Scale::Linear {
                    min: 0.0,
                    max: 10.0,
                },
                ticks: vec![0.0, 10.0],
            },
            series: vec![
                Series {
                    label: "one".into(),
                    color: "#000".into(),
                    dashed: false,
                    points: vec![(0.0, 0.0), (10.0, 10.0)],
                },
                Series {
                    label: "two".into(),
                    color: "#f00".into(),
                    dashed: true,
                    points: vec![(5.0, 5.0)],
                },
            ],
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("stroke-dasharray"));
        assert!(svg.contains(">two</text>"));
        // The point (0, 0) is the plot area's lower left corner.
        assert!(svg.contains(&format!("points=\"{LEFT:.1},{:.1}", HEIGHT - BOTTOM)));
    }
}
