//! The plots of BENCHMARKS.md, drawn from one `--peers` sitting: tasks a
//! second and round trips against the peers, and the seed's pi experiment
//! (total seconds against block size).
//!
//! Text is set in a TrueType font read at run time (DejaVu Sans, from
//! Debian's `fonts-dejavu-core`, or `FERRY_PLOT_FONT`), so that none is
//! vendored here.

use std::path::Path;

use anyhow::Context;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::peers::Sitting;

const W: u32 = 1200;
const H: u32 = 520;
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// One color per system, in the sitting's order.
const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x5f, 0xa8),
    RGBColor(0x5d, 0xa5, 0xe8),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0x66, 0x66, 0x66),
];

pub(crate) fn font() -> anyhow::Result<()> {
    let path = std::env::var("FERRY_PLOT_FONT").unwrap_or_else(|_| FONT.to_owned());
    let bytes = std::fs::read(&path).with_context(|| {
        format!("reading the plots' font {path} (apt-get install fonts-dejavu-core, or set FERRY_PLOT_FONT)")
    })?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{path} is not a TrueType font"))
}

/// Draws `throughput.png` and `pi-blocks.png` into `dir`.
pub(crate) fn draw(sitting: &Sitting, dir: &Path) -> anyhow::Result<()> {
    font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    png(&dir.join("throughput.png"), |root| {
        throughput(sitting, root)
    })?;
    png(&dir.join("pi-blocks.png"), |root| pi_blocks(sitting, root))?;
    println!(
        "plots: {} and {}",
        dir.join("throughput.png").display(),
        dir.join("pi-blocks.png").display()
    );
    Ok(())
}

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

pub(crate) fn png(
    path: &Path,
    body: impl FnOnce(&Area) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut rgb = vec![0u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        body(&root)?;
        root.present().map_err(draw_error)?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = ::png::Encoder::new(std::io::BufWriter::new(file), W, H);
    encoder.set_color(::png::ColorType::Rgb);
    encoder.set_depth(::png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| w.write_image_data(&rgb))
        .with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn draw_error<E: std::error::Error + Send + Sync>(
    e: DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e}")
}

/// Bars on a log scale, one a system, each labelled with its value.
fn bars(
    area: &Area,
    title: &str,
    names: &[String],
    values: &[f64],
    label: impl Fn(f64) -> String,
) -> anyhow::Result<()> {
    let finite = values.iter().copied().filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = finite.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    anyhow::ensure!(lo <= hi, "no figures to plot for {title}");
    // An integer range is inclusive here: `0..n - 1` makes n slots.
    let last = names.len() - 1;
    let (lo, hi) = (
        10f64.powf((lo / 3.0).log10().floor()),
        10f64.powf((hi * 3.0).log10().ceil()),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d((0..last).into_segmented(), (lo..hi).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| label(*v))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_error)?;
    for (i, v) in values.iter().enumerate() {
        if !(v.is_finite() && *v > 0.0) {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(i), lo),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                color.filled(),
            )))
            .map_err(draw_error)?;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(i), lo),
                    (SegmentValue::Exact(i + 1), hi),
                ],
                WHITE.stroke_width(8),
            )))
            .map_err(draw_error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label(*v),
                (SegmentValue::CenterOf(i), *v * 1.25),
                ("sans-serif", 15).into_font().color(&BLACK),
            )))
            .map_err(draw_error)?;
    }
    Ok(())
}

fn throughput(s: &Sitting, root: &Area) -> anyhow::Result<()> {
    let (left, right) = root.split_horizontally(W / 2);
    let names: Vec<String> = s.systems.iter().map(|x| x.name.clone()).collect();
    let rates: Vec<f64> = s.systems.iter().map(|x| x.tasks_per_sec).collect();
    let rtts: Vec<f64> = s.systems.iter().map(|x| x.rtt_p50 * 1e3).collect();
    bars(
        &left,
        "no-op tasks/s, end to end (higher is better)",
        &names,
        &rates,
        |v| {
            if v >= 1e3 {
                format!("{:.0}k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        },
    )?;
    bars(
        &right,
        "round trip p50, ms (lower is better)",
        &names,
        &rtts,
        |v| {
            if v >= 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            }
        },
    )?;
    Ok(())
}

fn pi_blocks(s: &Sitting, root: &Area) -> anyhow::Result<()> {
    let series: Vec<_> = s
        .systems
        .iter()
        .enumerate()
        .filter(|(_, x)| !x.pi.is_empty())
        .collect();
    let all = series
        .iter()
        .flat_map(|(_, x)| x.pi.iter().map(|p| p.1))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    anyhow::ensure!(lo <= hi, "no pi figures to plot");
    let title = format!(
        "100 × pi({}) in blocks: total seconds against block size ({} workers; lower is better)",
        s.pi_points, s.workers
    );
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (0.8f64..130.0).log_scale(),
            (lo / 2.0..hi * 2.0).log_scale(),
        )
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("block size (tasks submitted together)")
        .y_desc("seconds")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(draw_error)?;
    for (i, x) in series {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = x.pi.iter().map(|(b, t)| (*b as f64, *t)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
            .map_err(draw_error)?
            .label(x.name.clone())
            .legend(move |(px, py)| {
                PathElement::new(vec![(px, py), (px + 20, py)], color.stroke_width(3))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::Series;

    fn series(name: &str, rate: f64, rtt: f64, pi: f64) -> Series {
        Series {
            name: name.to_owned(),
            tasks_per_sec: rate,
            rtt_p50: rtt,
            pi: [1, 10, 100].map(|b| (b, pi * 10.0 / b as f64)).to_vec(),
        }
    }

    /// The RGB pixels of a PNG this module drew.
    fn pixels(path: &Path) -> (u32, u32, Vec<u8>) {
        let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut reader = ::png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn both_plots_draw_every_system_and_only_those() {
        let sitting = Sitting {
            systems: vec![
                series("ferry strict", 50_000.0, 1.2e-3, 0.02),
                series("ferry none", 60_000.0, 0.4e-3, 0.02),
                series("parsl", 1_000.0, 1.9e-3, 0.5),
                series("dask", 550.0, 10.7e-3, 0.6),
            ],
            pi_points: 1_000_000,
            workers: 2,
        };
        let dir = std::env::temp_dir().join(format!("ferry-plot-test-{}", std::process::id()));
        draw(&sitting, &dir).unwrap();
        let (w, h, rgb) = pixels(&dir.join("throughput.png"));
        assert_eq!((w, h), (W, H));
        let share = |c: RGBColor, x0: u32, x1: u32| {
            let hits = rgb
                .chunks_exact(3)
                .enumerate()
                .filter(|(i, p)| {
                    let x = (*i as u32) % w;
                    (x0..x1).contains(&x) && **p == [c.0, c.1, c.2]
                })
                .count();
            hits as f64 / f64::from((x1 - x0) * h)
        };
        // Each half holds one bar a system, in its color; the slots share
        // the width, so the rightmost bar reaches the plot's right edge.
        for (i, _) in sitting.systems.iter().enumerate() {
            assert!(
                share(COLORS[i], 0, w / 2) > 0.01,
                "bar {i} of the tasks/s half is missing"
            );
            assert!(
                share(COLORS[i], w / 2, w) > 0.005,
                "bar {i} of the rtt half is missing"
            );
        }
        let last = COLORS[sitting.systems.len() - 1];
        assert!(
            share(last, w / 2 - w / 10, w / 2) > 0.02,
            "no empty slot after the last system"
        );
        let (w, h, _) = pixels(&dir.join("pi-blocks.png"));
        assert_eq!((w, h), (W, H));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
