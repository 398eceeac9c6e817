//! The Prometheus text exposition format (version 0.0.4, what
//! `promtool check metrics` lints): every family once, `# HELP` and
//! `# TYPE` first, its samples together.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::histogram::HistogramSnapshot;

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Buckets, `_sum` and `_count`.
    Histogram,
}

impl Kind {
    /// As `# TYPE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A `/metrics` page being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
    families: BTreeSet<String>,
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `+Inf`/`-Inf`/`NaN` spelled
/// as Prometheus reads them.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    /// An empty page.
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts family `name` (its `# HELP` and `# TYPE`), unless it was
    /// started before: then its samples must follow at once, as here.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        if self.families.insert(name.to_string()) {
            let help = help.replace('\\', "\\\\").replace('\n', "\\n");
            let _ = writeln!(self.out, "# HELP {name} {help}");
            let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        }
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: f64) {
        let _ = writeln!(self.out, "{name}{} {}", labels(pairs), number(value));
    }

    /// One sample whose labels are already written in `series`
    /// (`name{label="value"}`).
    pub fn sample_series(&mut self, series: &str, value: f64) {
        let _ = writeln!(self.out, "{series} {}", number(value));
    }

    /// An unlabelled counter.
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Counter, help);
        self.sample(name, &[], value);
    }

    /// An unlabelled gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Gauge, help);
        self.sample(name, &[], value);
    }

    /// A histogram family: one series per label set (`names` are the
    /// label names, each series' values in the same order).
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        names: &[&str],
        series: &[(Vec<String>, HistogramSnapshot)],
    ) {
        self.family(name, Kind::Histogram, help);
        for (values, h) in series {
            let pairs: Vec<(&str, &str)> = names
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            for (le, n) in &h.buckets {
                let le = number(*le);
                let mut with_le = pairs.clone();
                with_le.push(("le", &le));
                let _ = writeln!(self.out, "{name}_bucket{} {n}", labels(&with_le));
            }
            let _ = writeln!(self.out, "{name}_sum{} {}", labels(&pairs), number(h.sum));
            let _ = writeln!(self.out, "{name}_count{} {}", labels(&pairs), h.count);
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metrics::Histogram;

    #[test]
    fn writes_each_family_once_with_help_and_type() {
        static B: [f64; 2] = [0.5, 1.0];
        let h = Histogram::new(&B);
        h.observe(0.25);
        let mut e = Exposition::new();
        e.counter("a_total", "A \"quoted\" help.", 3.0);
        e.family("b", Kind::Gauge, "B.");
        e.sample("b", &[("x", "1\"2")], 0.5);
        e.family("b", Kind::Gauge, "B.");
        e.sample("b", &[("x", "3")], 1.0);
        e.histogram(
            "c_seconds",
            "C.",
            &["trunk"],
            &[(vec!["POC".into()], h.snapshot())],
        );
        let page = e.finish();
        assert_eq!(page.matches("# TYPE b gauge").count(), 1);
        assert!(page.contains("a_total 3\n"));
        assert!(page.contains("b{x=\"1\\\"2\"} 0.5\n"));
        assert!(page.contains("c_seconds_bucket{trunk=\"POC\",le=\"0.5\"} 1\n"));
        assert!(page.contains("c_seconds_bucket{trunk=\"POC\",le=\"+Inf\"} 1\n"));
        assert!(page.contains("c_seconds_sum{trunk=\"POC\"} 0.25\n"));
        assert!(page.contains("c_seconds_count{trunk=\"POC\"} 1\n"));
    }
}
