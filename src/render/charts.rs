//! Charts drawn in-process with plotters: SVG for pages, PNG for email.
//!
//! The same input gives the same bytes on every machine: text is measured and (in PNGs) drawn
//! with an embedded font (DejaVu Sans, see `fonts/LICENSE`), never a system font; PNGs are
//! encoded here with fixed settings and no timestamp. Colours are a dark blue, an orange and a
//! grey of clearly different lightness, and the target line is dashed, so charts survive
//! greyscale printing. Axes are labelled in the metric's unit (dates as week labels, currency
//! with `$` and `k`/`M`, percent with `%`).

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::defs::{ChartType, Unit};
use crate::report::{ChartData, ChartPoint};

/// Chart size in pixels (SVG user units and PNG pixels).
pub const WIDTH: u32 = 640;
/// Chart height.
pub const HEIGHT: u32 = 300;
/// Sparkline size.
pub const SPARK: (u32, u32) = (132, 32);

const FONT: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
const INK: RGBColor = RGBColor(0x1b, 0x3a, 0x6b);
const ACCENT: RGBColor = RGBColor(0xd9, 0x82, 0x2b);
const MUTED: RGBColor = RGBColor(0x80, 0x80, 0x80);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font always parses; a failure would only mean plotters' default.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Formats an axis value compactly in the metric's unit.
pub fn axis_value(unit: Unit, value: f64) -> String {
    let compact = |v: f64| {
        let a = v.abs();
        if a >= 1e6 {
            format!("{:.1}M", v / 1e6)
        } else if a >= 1e4 {
            format!("{:.0}k", v / 1e3)
        } else if a >= 1e3 {
            format!("{:.1}k", v / 1e3)
        } else if v.fract() == 0.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    match unit {
        Unit::Currency => format!("${}", compact(value)),
        Unit::Percent => format!("{:.1}%", value * 100.0),
        Unit::Ratio => format!("{value:.2}"),
        _ => compact(value),
    }
}

type DrawResult<E> = Result<(), DrawingAreaErrorKind<E>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartData,
) -> DrawResult<DB::ErrorType> {
    root.fill(&WHITE)?;
    match chart.kind {
        ChartType::Trend => trend(root, chart),
        ChartType::Funnel => bars(root, chart, true),
        ChartType::Breakdown => bars(root, chart, false),
    }
}

fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        low = low.min(v);
        high = high.max(v);
    }
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let low = low.min(0.0);
    let high = if high <= low { low + 1.0 } else { high * 1.08 };
    (low, high)
}

/// A line over the weeks with the target as a dashed step line.
fn trend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartData,
) -> DrawResult<DB::ErrorType> {
    let n = chart.points.len().max(1);
    let (low, high) = value_range(
        chart
            .points
            .iter()
            .flat_map(|p| [p.value, p.target])
            .flatten(),
    );
    let mut context = ChartBuilder::on(root)
        .caption(&chart.title, (FAMILY, 16).into_font().color(&BLACK))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), low..high)?;
    let labels: Vec<String> = chart
        .points
        .iter()
        .map(|p| p.label.rsplit('-').next().unwrap_or(&p.label).to_string())
        .collect();
    let unit = chart.unit;
    context
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .axis_style(MUTED)
        .x_labels(n)
        .x_label_formatter(&|x| {
            let index = x.round();
            if (x - index).abs() > 0.01 || index < 0.0 {
                return String::new();
            }
            labels.get(index as usize).cloned().unwrap_or_default()
        })
        .y_labels(5)
        .y_label_formatter(&|y| axis_value(unit, *y))
        .label_style((FAMILY, 11).into_font().color(&BLACK))
        .draw()?;
    // The target, where set: a dashed line, grey, behind the data.
    let targets: Vec<(f64, f64)> = chart
        .points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.target.map(|t| (i as f64, t)))
        .collect();
    if targets.len() > 1 {
        context
            .draw_series(DashedLineSeries::new(targets, 6, 4, MUTED.stroke_width(2)))?
            .label("target")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], MUTED.stroke_width(2)));
    }
    // The values: one line per run of weeks with data (a week without data breaks the line).
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, point) in chart.points.iter().enumerate() {
        match point.value {
            Some(v) => runs.last_mut().map(|r| r.push((i as f64, v))).unwrap_or(()),
            None => runs.push(Vec::new()),
        }
    }
    let mut first = true;
    for run in runs.into_iter().filter(|r| !r.is_empty()) {
        let series = context.draw_series(LineSeries::new(run.clone(), INK.stroke_width(2)))?;
        if first {
            series
                .label(chart.unit_label())
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], INK.stroke_width(2)));
            first = false;
        }
        context.draw_series(
            run.iter()
                .map(|(x, y)| Circle::new((*x, *y), 3, INK.filled())),
        )?;
    }
    // Maturing cohorts: hollow markers over the line, with a legend entry (they will rise).
    let maturing: Vec<(f64, f64)> = chart
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.note.as_deref() == Some(crate::report::chart_data::MATURING_NOTE))
        .filter_map(|(i, p)| p.value.map(|v| (i as f64, v)))
        .collect();
    if !maturing.is_empty() {
        context
            .draw_series(
                maturing
                    .iter()
                    .map(|(x, y)| Circle::new((*x, *y), 5, WHITE.filled())),
            )?
            .label("cohort still maturing")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, INK.stroke_width(2)));
        context.draw_series(
            maturing
                .iter()
                .map(|(x, y)| Circle::new((*x, *y), 5, INK.stroke_width(2))),
        )?;
    }
    context
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .label_font((FAMILY, 11))
        .draw()?;
    Ok(())
}

/// Horizontal bars, one per point; on a log scale for funnels (steps differ by orders of
/// magnitude), with each bar's value and, for funnels, its ratio to the step before.
fn bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    chart: &ChartData,
    log: bool,
) -> DrawResult<DB::ErrorType> {
    let n = chart.points.len().max(1);
    let titled = root.titled(&chart.title, (FAMILY, 16).into_font().color(&BLACK))?;
    let (_labels, plot_area) = titled.split_horizontally(150);
    let high = chart
        .points
        .iter()
        .filter_map(|p| p.value)
        .fold(1.0f64, f64::max);
    let row = |i: usize| i as f64;
    let centred = Pos::new(HPos::Left, VPos::Center);
    let label_style = (FAMILY, 12).into_font().color(&BLACK).pos(centred);
    let small = (FAMILY, 11).into_font().color(&BLACK).pos(centred);
    if log {
        let mut context = ChartBuilder::on(&plot_area)
            .margin_right(if log { 150 } else { 60 })
            .margin_top(4)
            .build_cartesian_2d((1f64..high * 1.5).log_scale(), -0.5f64..(n as f64 - 0.5))?;
        for (i, point) in chart.points.iter().enumerate() {
            let y = row(n - 1 - i);
            if let Some(v) = point.value.filter(|v| *v >= 1.0) {
                context.draw_series([Rectangle::new(
                    [(1.0, y - 0.32), (v, y + 0.32)],
                    if i % 2 == 0 {
                        INK.filled()
                    } else {
                        ACCENT.filled()
                    },
                )])?;
                let (x, ty) = context.backend_coord(&(v, y));
                root.draw(&Text::new(value_text(point), (x + 4, ty), small.clone()))?;
            }
            let (_, ty) = context.backend_coord(&(1.0, y));
            root.draw(&Text::new(
                point.label.clone(),
                (8, ty),
                label_style.clone(),
            ))?;
        }
    } else {
        let mut context = ChartBuilder::on(&plot_area)
            .margin_right(if log { 150 } else { 60 })
            .margin_top(4)
            .build_cartesian_2d(0f64..high * 1.05, -0.5f64..(n as f64 - 0.5))?;
        for (i, point) in chart.points.iter().enumerate() {
            let y = row(n - 1 - i);
            if let Some(v) = point.value {
                context.draw_series([Rectangle::new(
                    [(0.0, y - 0.32), (v.max(0.0), y + 0.32)],
                    INK.filled(),
                )])?;
                let (x, ty) = context.backend_coord(&(v.max(0.0), y));
                root.draw(&Text::new(value_text(point), (x + 4, ty), small.clone()))?;
            }
            let (_, ty) = context.backend_coord(&(0.0, y));
            root.draw(&Text::new(
                point.label.clone(),
                (8, ty),
                label_style.clone(),
            ))?;
        }
    }
    Ok(())
}

fn value_text(point: &ChartPoint) -> String {
    let value = point
        .value
        .map(|v| axis_value(point.unit, v))
        .unwrap_or_else(|| "—".into());
    match &point.note {
        Some(note) => format!("{value} ({note})"),
        None => value,
    }
}

/// Renders a chart as SVG.
pub fn svg(chart: &ChartData) -> Result<String, String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|e| format!("chart {}: {e}", chart.name))?;
        root.present()
            .map_err(|e| format!("chart {}: {e}", chart.name))?;
    }
    Ok(out)
}

/// Renders a chart as PNG bytes (RGB, 8 bits, no metadata): identical for identical input.
pub fn png(chart: &ChartData) -> Result<Vec<u8>, String> {
    register_font();
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, chart).map_err(|e| format!("chart {}: {e}", chart.name))?;
        root.present()
            .map_err(|e| format!("chart {}: {e}", chart.name))?;
    }
    encode_png(&pixels, WIDTH, HEIGHT)
}

fn encode_png(pixels: &[u8], width: u32, height: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut encoder = ::png::Encoder::new(&mut out, width, height);
        encoder.set_color(::png::ColorType::Rgb);
        encoder.set_depth(::png::BitDepth::Eight);
        encoder.set_compression(::png::Compression::Default);
        let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// A sparkline: the values as a thin line, the last one marked; no axes.
pub fn sparkline(values: &[Option<f64>]) -> Result<String, String> {
    register_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SPARK).into_drawing_area();
        let present: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i as f64, v)))
            .collect();
        let (mut low, mut high) = present
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (_, v)| {
                (l.min(*v), h.max(*v))
            });
        if !low.is_finite() {
            (low, high) = (0.0, 1.0);
        }
        if high <= low {
            high = low + 1.0;
        }
        let result = (|| -> DrawResult<_> {
            let mut context = ChartBuilder::on(&root)
                .margin(3)
                .build_cartesian_2d(0f64..(values.len().max(2) - 1) as f64, low..high)?;
            context.draw_series(LineSeries::new(present.clone(), INK.stroke_width(1)))?;
            if let Some(last) = present.last() {
                context.draw_series([Circle::new(*last, 2, ACCENT.filled())])?;
            }
            root.present()
        })();
        result.map_err(|e| format!("sparkline: {e}"))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed chart of each kind: the golden inputs.
    pub(crate) fn golden_charts() -> Vec<ChartData> {
        let weeks = [
            "2026-W40", "2026-W41", "2026-W42", "2026-W43", "2026-W44", "2026-W45",
        ];
        let trend = ChartData {
            name: "pipeline-trend".into(),
            title: "Pipeline created".into(),
            kind: ChartType::Trend,
            unit: Unit::Currency,
            by: None,
            points: weeks
                .iter()
                .zip([
                    412_000.0,
                    455_500.5,
                    f64::NAN,
                    530_120.0,
                    498_000.0,
                    610_000.0,
                ])
                .map(|(week, v)| ChartPoint {
                    label: week.to_string(),
                    value: (!v.is_nan()).then_some(v),
                    target: Some(if *week < "2026-W43" {
                        450_000.0
                    } else {
                        550_000.0
                    }),
                    metric: "pipeline_created".into(),
                    period: week.to_string(),
                    unit: Unit::Currency,
                    note: None,
                    attribution: None,
                })
                .collect(),
        };
        let breakdown = ChartData {
            name: "mqls-by-channel".into(),
            title: "MQLs by channel".into(),
            kind: ChartType::Breakdown,
            unit: Unit::Count,
            by: Some("channel".into()),
            points: [
                ("paid_search", 41.0),
                ("organic_search", 33.0),
                ("referral", 7.0),
                ("email", 0.0),
            ]
            .iter()
            .map(|(label, v)| ChartPoint {
                label: label.to_string(),
                value: Some(*v),
                target: None,
                metric: "mqls".into(),
                period: "2026-W45".into(),
                unit: Unit::Count,
                note: None,
                attribution: None,
            })
            .collect(),
        };
        let funnel = ChartData {
            name: "funnel".into(),
            title: "Funnel".into(),
            kind: ChartType::Funnel,
            unit: Unit::Count,
            by: None,
            points: [
                ("Ad spend", 52_000.0, Unit::Currency, None),
                ("Clicks", 18_400.0, Unit::Count, Some("0.35 per $")),
                ("Sessions", 21_000.0, Unit::Count, Some("114%")),
                ("MQLs", 81.0, Unit::Count, Some("0.4%")),
            ]
            .iter()
            .map(|(label, v, unit, note)| ChartPoint {
                label: label.to_string(),
                value: Some(*v),
                target: None,
                metric: label.to_lowercase(),
                period: "2026-W45".into(),
                unit: *unit,
                note: note.map(str::to_string),
                attribution: None,
            })
            .collect(),
        };
        vec![trend, breakdown, funnel]
    }

    fn golden_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
    }

    /// Regenerate with `KPI_UPDATE_GOLDEN=1 cargo test --lib golden`.
    #[test]
    fn chart_svgs_match_the_golden_files() {
        let update = std::env::var_os("KPI_UPDATE_GOLDEN").is_some();
        for chart in golden_charts() {
            let svg = svg(&chart).expect("renders");
            let path = golden_dir().join(format!("chart-{}.svg", chart.name));
            if update {
                std::fs::create_dir_all(golden_dir()).expect("dir");
                std::fs::write(&path, &svg).expect("write golden");
                continue;
            }
            let golden = std::fs::read_to_string(&path).unwrap_or_else(|_| {
                panic!(
                    "{} missing; run KPI_UPDATE_GOLDEN=1 cargo test --lib golden",
                    path.display()
                )
            });
            assert!(
                svg == golden,
                "{} differs from the golden file; if the change is intended, run KPI_UPDATE_GOLDEN=1 cargo test --lib golden and review the diff",
                path.display()
            );
        }
    }

    #[test]
    fn pngs_are_byte_identical_across_renders_and_decode() {
        for chart in golden_charts() {
            let first = png(&chart).expect("renders");
            let second = png(&chart).expect("renders");
            assert_eq!(first, second, "{}", chart.name);
            let decoder = ::png::Decoder::new(std::io::Cursor::new(&first));
            let reader = decoder.read_info().expect("a PNG");
            assert_eq!(reader.info().width, WIDTH);
            assert_eq!(reader.info().height, HEIGHT);
            // Something was drawn: not every pixel is white.
            let mut reader = reader;
            let mut pixels = vec![0; reader.output_buffer_size()];
            reader.next_frame(&mut pixels).expect("frame");
            assert!(pixels.iter().any(|p| *p < 200), "{} is blank", chart.name);
        }
    }

    #[test]
    fn maturing_cohorts_are_drawn_hollow_with_a_legend() {
        let mut chart = golden_charts().remove(0);
        let plain = svg(&chart).expect("renders");
        for point in chart.points.iter_mut().skip(4) {
            point.note = Some(crate::report::chart_data::MATURING_NOTE.into());
        }
        let marked = svg(&chart).expect("renders");
        assert!(!plain.contains("cohort still maturing"));
        assert!(marked.contains("cohort still maturing"), "legend entry");
        let hollow = |text: &str| text.matches("r=\"5\"").count();
        assert_eq!(
            hollow(&marked) - hollow(&plain),
            2 * 2,
            "two points, each a fill and a ring"
        );
    }

    #[test]
    fn axis_values_are_readable() {
        assert_eq!(axis_value(Unit::Currency, 450_000.0), "$450k");
        assert_eq!(axis_value(Unit::Currency, 1_250_000.0), "$1.2M");
        assert_eq!(axis_value(Unit::Percent, 0.125), "12.5%");
        assert_eq!(axis_value(Unit::Count, 81.0), "81");
        assert_eq!(axis_value(Unit::Count, 2_500.0), "2.5k");
    }
}
