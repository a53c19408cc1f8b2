//! SVG charts for `docs/`: throughput ratio bars, the latency CDF, the scaling curves and the
//! client start-to-token bars (plotters, SVG backend only).

use std::path::Path;

use plotters::prelude::*;

use super::fail;

/// Chart size, px.
const SIZE: (u32, u32) = (760, 420);
/// Series colours (colour-blind-safe palette).
const COLOURS: [RGBColor; 5] = [
    RGBColor(0x44, 0x77, 0xAA),
    RGBColor(0xEE, 0x66, 0x77),
    RGBColor(0x22, 0x88, 0x33),
    RGBColor(0xCC, 0xBB, 0x44),
    RGBColor(0xAA, 0x33, 0x77),
];

fn colour(i: usize) -> RGBColor {
    COLOURS.get(i % COLOURS.len()).copied().unwrap_or(BLACK)
}

fn err(what: &str, e: impl std::fmt::Display) -> crate::StepFailed {
    fail(&format!("chart {what}"), e)
}

/// Horizontal-ish bars: one per `(label, value)`, with a dashed goal line at `goal`.
pub fn bars(
    out: &Path,
    title: &str,
    y_label: &str,
    items: &[(String, f64)],
    goal: Option<(f64, &str)>,
) -> crate::Result {
    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(title, e))?;
    let top = items
        .iter()
        .map(|i| i.1)
        .chain(goal.map(|g| g.0))
        .fold(0.0_f64, f64::max)
        * 1.2;
    #[allow(clippy::cast_precision_loss)] // a handful of bars
    let n = items.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..top.max(f64::MIN_POSITIVE))
        .map_err(|e| err(title, e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(title, e))?;
    for (i, (label, v)) in items.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let x = i as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, *v)],
                colour(i).filled(),
            )))
            .map_err(|e| err(title, e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{label}: {}", short(*v)),
                (x + 0.15, *v + top * 0.03),
                ("sans-serif", 13),
            )))
            .map_err(|e| err(title, e))?;
    }
    if let Some((g, label)) = goal {
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, g), (n, g)],
                6,
                4,
                BLACK.stroke_width(1),
            ))
            .map_err(|e| err(title, e))?;
        chart
            .draw_series(std::iter::once(Text::new(
                label.to_owned(),
                (0.02, g + top * 0.02),
                ("sans-serif", 12),
            )))
            .map_err(|e| err(title, e))?;
    }
    root.present().map_err(|e| err(title, e))
}

fn short(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Lines on a log-scaled x axis: `series` of `(name, points)`.
pub fn lines_log_x(
    out: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
) -> crate::Result {
    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(title, e))?;
    let pts = || series.iter().flat_map(|s| s.1.iter());
    let x_min = pts().map(|p| p.0).fold(f64::INFINITY, f64::min).max(1e-3);
    let x_max = pts().map(|p| p.0).fold(0.0_f64, f64::max).max(x_min * 10.0);
    let y_max = pts().map(|p| p.1).fold(0.0_f64, f64::max).max(1.0) * 1.15;
    let y_min = pts().map(|p| p.1).fold(f64::INFINITY, f64::min).max(1e-3) / 1.5;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart.map_err(|e| err(title, e))?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .draw()
                .map_err(|e| err(title, e))?;
            for (i, (name, points)) in series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
                    .map_err(|e| err(title, e))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(|e| err(title, e))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| err(title, e))?;
        }};
    }
    if log_y {
        draw!(builder.build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale()));
    } else {
        draw!(builder.build_cartesian_2d((x_min..x_max).log_scale(), 0.0..y_max));
    }
    root.present().map_err(|e| err(title, e))
}

/// The latency CDF: x = latency (µs, log scale), y = percentile.
pub fn cdf(out: &Path, series: &[(String, Vec<(f64, f64)>)]) -> crate::Result {
    let title = "Latency percentiles under load (plain wrk, cached tokens)";
    let root = SVGBackend::new(out, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(title, e))?;
    let pts = || series.iter().flat_map(|s| s.1.iter());
    let x_min = pts().map(|p| p.1).fold(f64::INFINITY, f64::min).max(1.0) / 1.3;
    let x_max = pts().map(|p| p.1).fold(0.0_f64, f64::max).max(x_min * 10.0) * 1.3;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0.0..100.0)
        .map_err(|e| err(title, e))?;
    chart
        .configure_mesh()
        .x_desc("latency (µs, log scale)")
        .y_desc("percentile")
        .draw()
        .map_err(|e| err(title, e))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let c = colour(i);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|&(p, us)| (us.max(1.0), p)),
                c.stroke_width(2),
            ))
            .map_err(|e| err(title, e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(title, e))?;
    root.present().map_err(|e| err(title, e))
}
