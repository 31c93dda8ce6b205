//! Grouped bar charts written as plain SVG (no font or image libraries needed).

use std::fmt::Write as _;

/// Chart width in pixels.
const WIDTH: f64 = 760.0;
/// Height of the plotting area.
const PLOT_HEIGHT: f64 = 280.0;
/// Space left of the plot for axis labels.
const LEFT: f64 = 80.0;
/// Space above the plot for the title and one row of legend.
const TOP: f64 = 60.0;
/// Height of each further row of legend (a legend wider than the chart wraps).
const LEGEND_ROW: f64 = 16.0;
/// Space below the plot for category labels.
const BOTTOM: f64 = 44.0;
/// One colour per series, in order (colour-blind-safe palette).
const COLOURS: [&str; 6] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
];

/// One named series: a value (or nothing) per category.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Legend name.
    pub(crate) name: String,
    /// One value per category; `None` draws no bar.
    pub(crate) values: Vec<Option<f64>>,
}

/// A grouped bar chart.
#[derive(Debug, Clone)]
pub(crate) struct BarChart {
    /// Title line.
    pub(crate) title: String,
    /// Y axis unit.
    pub(crate) unit: String,
    /// Category labels (groups along the x axis).
    pub(crate) categories: Vec<String>,
    /// Series (bars within each group).
    pub(crate) series: Vec<Series>,
}

impl BarChart {
    /// Whether there is anything to draw.
    pub(crate) fn is_empty(&self) -> bool {
        self.series
            .iter()
            .all(|s| s.values.iter().all(Option::is_none))
    }

    /// Renders the chart as an SVG document.
    pub(crate) fn to_svg(&self) -> String {
        let max = self
            .series
            .iter()
            .flat_map(|s| s.values.iter().flatten())
            .fold(0.0f64, |a, &b| a.max(b));
        let top = nice_ceiling(max);
        let legend = self.legend_places();
        let rows = legend.last().map_or(0, |&(_, row)| row);
        let plot_top = TOP + LEGEND_ROW * rows as f64;
        let height = plot_top + PLOT_HEIGHT + BOTTOM;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="20" font-size="15" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        self.axes(&mut svg, top, plot_top);
        self.legend(&mut svg, &legend);
        self.bars(&mut svg, top, plot_top);
        svg.push_str("</svg>\n");
        svg
    }

    /// Y axis gridlines and labels, the plot starting `plot_top` down.
    fn axes(&self, svg: &mut String, top: f64, plot_top: f64) {
        for i in 0..=4 {
            let value = top * f64::from(i) / 4.0;
            let y = plot_top + PLOT_HEIGHT - PLOT_HEIGHT * f64::from(i) / 4.0;
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/>"##,
                WIDTH - 10.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                y + 4.0,
                human(value)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
            plot_top + PLOT_HEIGHT / 2.0,
            plot_top + PLOT_HEIGHT / 2.0,
            escape(&self.unit)
        );
    }

    /// Where each series' legend entry goes: (x, row from 0), in rows under the title,
    /// a new row when the next entry would run past the right edge.
    fn legend_places(&self) -> Vec<(f64, usize)> {
        let (mut x, mut row) = (LEFT, 0);
        let mut places = Vec::with_capacity(self.series.len());
        for series in &self.series {
            let width = 24.0 + 8.0 * series.name.chars().count() as f64;
            if x > LEFT && x + width - 8.0 > WIDTH {
                (x, row) = (LEFT, row + 1);
            }
            places.push((x, row));
            x += width;
        }
        places
    }

    /// The legend rows under the title, at `places`.
    fn legend(&self, svg: &mut String, places: &[(f64, usize)]) {
        for (i, (series, &(x, row))) in self.series.iter().zip(places).enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let y = 32.0 + LEGEND_ROW * row as f64;
            let _ = writeln!(
                svg,
                r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}"/>"#
            );
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}">{}</text>"#,
                x + 16.0,
                y + 11.0,
                escape(&series.name)
            );
        }
    }

    /// The bars with their value labels, and the category labels.
    fn bars(&self, svg: &mut String, top: f64, plot_top: f64) {
        let groups = self.categories.len().max(1) as f64;
        let group_width = (WIDTH - LEFT - 10.0) / groups;
        let bar_width = group_width * 0.8 / self.series.len().max(1) as f64;
        for (g, category) in self.categories.iter().enumerate() {
            let x0 = LEFT + group_width * g as f64 + group_width * 0.1;
            for (i, series) in self.series.iter().enumerate() {
                let Some(value) = series.values.get(g).copied().flatten() else {
                    continue;
                };
                let h = if top > 0.0 {
                    PLOT_HEIGHT * value / top
                } else {
                    0.0
                };
                let (x, y) = (x0 + bar_width * i as f64, plot_top + PLOT_HEIGHT - h);
                let colour = COLOURS[i % COLOURS.len()];
                let _ = writeln!(
                    svg,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{h:.1}" fill="{colour}"/>"#,
                    bar_width - 2.0
                );
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    x + bar_width / 2.0 - 1.0,
                    y - 3.0,
                    human(value)
                );
            }
            let cx = LEFT + group_width * (g as f64 + 0.5);
            let y = plot_top + PLOT_HEIGHT + 16.0;
            let _ = write!(svg, r#"<text x="{cx:.1}" y="{y}" text-anchor="middle">"#);
            for (i, line) in category.split(", ").enumerate() {
                let dy = if i == 0 { 0.0 } else { 14.0 };
                let _ = write!(
                    svg,
                    r#"<tspan x="{cx:.1}" dy="{dy}">{}</tspan>"#,
                    escape(line)
                );
            }
            svg.push_str("</text>\n");
        }
    }
}

/// Smallest 1/2/2.5/5 × 10^k at or above `max`.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&v| v >= max)
        .unwrap_or(max)
}

/// Short human form: 1.2M, 340k, 12.5.
pub(crate) fn human(v: f64) -> String {
    match v.abs() {
        x if x >= 1e6 => format!("{:.2}M", v / 1e6),
        x if x >= 1e4 => format!("{:.0}k", v / 1e3),
        x if x >= 1e3 => format!("{:.1}k", v / 1e3),
        x if x >= 10.0 || x.fract() == 0.0 => format!("{v:.0}"),
        _ => format!("{v:.2}"),
    }
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bars_and_skips_missing_values() {
        let chart = BarChart {
            title: "t".into(),
            unit: "u".into(),
            categories: vec!["a".into(), "b".into()],
            series: vec![Series {
                name: "s".into(),
                values: vec![Some(3.0), None],
            }],
        };
        let svg = chart.to_svg();
        assert_eq!(
            svg.matches("<rect x=").count(),
            2,
            "one legend swatch, one bar"
        );
        assert!(!chart.is_empty());
    }

    #[test]
    fn a_legend_wider_than_the_chart_wraps() {
        let series = |names: &[&str]| {
            names
                .iter()
                .map(|&name| Series {
                    name: name.to_owned(),
                    values: vec![Some(1.0)],
                })
                .collect()
        };
        let chart = |names: &[&str]| BarChart {
            title: "t".into(),
            unit: "u".into(),
            categories: vec!["a".into()],
            series: series(names),
        };
        let five = [
            "switchboard (fixture)",
            "switchboard serve",
            "socketioxide",
            "node",
            "bare",
        ];
        assert!(
            chart(&five)
                .legend_places()
                .iter()
                .all(|&(_, row)| row == 0)
        );
        assert!(chart(&five).to_svg().contains(r#"height="384""#));
        let mut six = five.to_vec();
        six.insert(1, "switchboard (baseline)");
        let places = chart(&six).legend_places();
        assert_eq!(places.last().map(|p| p.1), Some(1));
        assert!(places.iter().all(|&(x, _)| x < WIDTH));
        assert!(chart(&six).to_svg().contains(r#"height="400""#));
    }

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(730.0), 1000.0);
        assert_eq!(nice_ceiling(2.1), 2.5);
    }
}
