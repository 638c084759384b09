//! The whole suite's figures: one table on stdout, and the same as JSON.
//!
//! Every figure keeps its samples, so that its median and spread (10th to
//! 90th percentile) come from one definition, and every check a benchmark
//! made of its results is kept beside the figures it produced.

use std::time::Duration;

use serde_json::{Value, json};

/// One measured figure: its samples, in `unit`.
pub(crate) struct Figure {
    pub bench: &'static str,
    pub case: String,
    pub unit: Unit,
    pub samples: Vec<f64>,
    pub target: Option<Target>,
}

/// A target a figure is held to.
pub(crate) struct Target {
    pub text: String,
    pub met: bool,
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Unit {
    TasksPerSec,
    Seconds,
    MegabytesPerSec,
    Mebibytes,
    Ratio,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::TasksPerSec => "tasks/s",
            Unit::Seconds => "s",
            Unit::MegabytesPerSec => "MB/s",
            Unit::Mebibytes => "MiB",
            Unit::Ratio => "×",
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Unit::Seconds => crate::fmt(Duration::from_secs_f64(v.max(0.0))),
            Unit::TasksPerSec | Unit::MegabytesPerSec | Unit::Mebibytes => format!("{v:.0}"),
            Unit::Ratio => format!("{v:.3}"),
        }
    }
}

/// The `q` quantile of sorted samples (nearest rank below).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q) as usize]
}

impl Figure {
    pub fn new(
        bench: &'static str,
        case: impl Into<String>,
        unit: Unit,
        samples: Vec<f64>,
    ) -> Self {
        let mut samples = samples;
        samples.sort_by(f64::total_cmp);
        Figure {
            bench,
            case: case.into(),
            unit,
            samples,
            target: None,
        }
    }

    pub fn seconds(bench: &'static str, case: impl Into<String>, samples: &[Duration]) -> Self {
        let s = samples.iter().map(Duration::as_secs_f64).collect();
        Figure::new(bench, case, Unit::Seconds, s)
    }

    /// Holds the median to at most `limit` (`at_least`: to at least it).
    pub fn target(mut self, text: impl Into<String>, limit: f64, at_least: bool) -> Self {
        let m = self.median();
        self.target = Some(Target {
            text: text.into(),
            met: if at_least { m >= limit } else { m <= limit },
        });
        self
    }

    pub fn median(&self) -> f64 {
        if self.samples.is_empty() {
            return f64::NAN;
        }
        quantile(&self.samples, 0.5)
    }

    fn spread(&self) -> (f64, f64) {
        if self.samples.is_empty() {
            return (f64::NAN, f64::NAN);
        }
        (quantile(&self.samples, 0.1), quantile(&self.samples, 0.9))
    }
}

/// What the suite measured and checked.
#[derive(Default)]
pub(crate) struct Report {
    /// Whether each benchmark prints its own table too (a single
    /// benchmark's run), or leaves it to the suite's one table.
    pub tables: bool,
    pub figures: Vec<Figure>,
    /// What each benchmark checked of its results, and whether it held.
    pub checks: Vec<(&'static str, String, bool)>,
    /// Benchmarks left out, and why.
    pub skipped: Vec<(&'static str, String)>,
}

impl Report {
    /// A report for one benchmark run alone, which prints its own table.
    pub fn printing() -> Self {
        Report {
            tables: true,
            ..Report::default()
        }
    }

    pub fn add(&mut self, figure: Figure) {
        self.figures.push(figure);
    }

    /// Records a check of `bench`'s results; a failed one fails the suite.
    pub fn check(&mut self, bench: &'static str, what: impl Into<String>, held: bool) {
        self.checks.push((bench, what.into(), held));
    }

    pub fn skip(&mut self, bench: &'static str, why: impl Into<String>) {
        self.skipped.push((bench, why.into()));
    }

    /// The median of the first figure of `bench` whose case starts with
    /// `case`.
    pub fn median_of(&self, bench: &str, case: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.bench == bench && f.case.starts_with(case))
            .map(Figure::median)
    }

    pub fn failed_checks(&self) -> usize {
        self.checks.iter().filter(|c| !c.2).count()
    }

    pub fn print(&self, title: &str) {
        println!("## {title}");
        println!();
        println!("| bench | case | median | spread (p10–p90) | runs | target |");
        println!("|---|---|---|---|---|---|");
        for f in &self.figures {
            let (lo, hi) = f.spread();
            // Durations carry their own unit.
            let unit = match f.unit {
                Unit::Seconds => String::new(),
                u => format!(" {}", u.name()),
            };
            let target = match &f.target {
                Some(t) => format!("{} {}", t.text, if t.met { "met" } else { "**missed**" }),
                None => String::new(),
            };
            println!(
                "| {} | {} | {}{unit} | {}–{} | {} | {target} |",
                f.bench,
                f.case,
                f.unit.show(f.median()),
                f.unit.show(lo),
                f.unit.show(hi),
                f.samples.len(),
            );
        }
        for (bench, why) in &self.skipped {
            println!("| {bench} | not run: {why} | | | | |");
        }
        println!();
        let failed = self.failed_checks();
        println!(
            "{} checks of results, {} held, {failed} failed",
            self.checks.len(),
            self.checks.len() - failed
        );
        for (bench, what, _) in self.checks.iter().filter(|c| !c.2) {
            println!("- FAILED {bench}: {what}");
        }
    }

    pub fn to_json(&self, machine: Value) -> Value {
        let figures: Vec<Value> = self
            .figures
            .iter()
            .map(|f| {
                let (lo, hi) = f.spread();
                json!({
                    "bench": f.bench,
                    "case": f.case,
                    "unit": f.unit.name(),
                    "median": f.median(),
                    "p10": lo,
                    "p90": hi,
                    "samples": f.samples,
                    "target": f.target.as_ref().map(|t| json!({"text": t.text, "met": t.met})),
                })
            })
            .collect();
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|(b, w, ok)| json!({"bench": b, "what": w, "held": ok}))
            .collect();
        let skipped: Vec<Value> = self
            .skipped
            .iter()
            .map(|(b, w)| json!({"bench": b, "why": w}))
            .collect();
        json!({
            "machine": machine,
            "figures": figures,
            "checks": checks,
            "skipped": skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_spread_and_targets_come_from_the_samples() {
        let f = Figure::new(
            "noop",
            "x",
            Unit::TasksPerSec,
            vec![5.0, 1.0, 3.0, 2.0, 4.0],
        )
        .target("≥ 3", 3.0, true);
        assert_eq!(f.median(), 3.0);
        assert_eq!(f.spread(), (1.0, 4.0));
        assert!(f.target.as_ref().is_some_and(|t| t.met));
        let f = Figure::new("rtt", "y", Unit::Seconds, vec![0.002, 0.001, 0.003])
            .target("≤ 1 ms", 0.001, false);
        assert!(f.target.as_ref().is_some_and(|t| !t.met));
        let mut r = Report::default();
        r.add(f);
        r.check("rtt", "all returned", true);
        r.check("rtt", "none lost", false);
        assert_eq!(r.failed_checks(), 1);
        let j = r.to_json(json!({}));
        assert_eq!(j["figures"][0]["median"], 0.002);
        assert_eq!(j["checks"][1]["held"], false);
        assert_eq!(r.median_of("rtt", "y"), Some(0.002));
    }
}
