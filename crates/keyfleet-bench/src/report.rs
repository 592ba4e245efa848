//! Markdown tables, the machine description, and small statistics.

use std::fmt::Write as _;

/// One benchmark's result: a title, a caption naming the command, date and machine, a table and notes.
pub struct Section {
    pub title: String,
    pub table: Table,
    pub notes: Vec<String>,
}

pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let _ = writeln!(out, "|{}", self.headers.iter().map(|_| "---|").collect::<String>());
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// Where and when the figures were taken.
pub struct Context {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub commit: String,
}

impl Context {
    pub fn detect(command: String) -> Context {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_owned())))
            .and_then(|r| r.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let dirty = std::process::Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .ok()
            .is_some_and(|o| !o.stdout.is_empty());
        Context {
            command,
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            machine: format!("{cpus} CPUs ({model}), {:.1} GiB RAM", mem_kib as f64 / 1024.0 / 1024.0),
            commit: if dirty { format!("{commit} + local changes") } else { commit },
        }
    }

    pub fn caption(&self) -> String {
        format!("`{}` — {} — {} — keyfleet {}", self.command, self.date, self.machine, self.commit)
    }
}

pub fn render(ctx: &Context, sections: &[Section]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# keyfleet benchmarks\n");
    let _ = writeln!(out, "- command: `{}`", ctx.command);
    let _ = writeln!(out, "- date: {}", ctx.date);
    let _ = writeln!(out, "- machine: {}", ctx.machine);
    let _ = writeln!(out, "- keyfleet: {}\n", ctx.commit);
    for s in sections {
        out.push_str(&render_section(ctx, s));
    }
    out
}

pub fn render_section(ctx: &Context, s: &Section) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {}\n", s.title);
    let _ = writeln!(out, "{}\n", ctx.caption());
    out.push_str(&s.table.markdown());
    out.push('\n');
    for n in &s.notes {
        let _ = writeln!(out, "- {n}");
    }
    if !s.notes.is_empty() {
        out.push('\n');
    }
    out
}

/// `12,345` style integers.
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate or duration with sensible precision.
pub fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 1000.0 {
        int(x.round() as u64)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// Two decimals, or three significant digits below 0.1 (0.014 says more than 0.01).
pub fn ratio(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() < 0.1 && x != 0.0 {
        let digits = (-x.abs().log10()).ceil() as usize + 2;
        format!("{x:.digits$}")
    } else {
        format!("{x:.2}")
    }
}

pub fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.2} %", x * 100.0) } else { "–".into() }
}

pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// `met` / `MISSED` against a target.
pub fn verdict(ok: bool) -> String {
    if ok { "met".into() } else { "**MISSED**".into() }
}

/// The q-quantile (0..=1) of sorted values.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn integers_get_thousands_separators() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1_000), "1,000");
        assert_eq!(int(1_234_567), "1,234,567");
    }

    #[test]
    fn numbers_keep_three_significant_digits_or_so() {
        assert_eq!(num(12_345.6), "12,346");
        assert_eq!(num(123.4), "123");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(f64::NAN), "–");
    }

    #[test]
    fn small_ratios_keep_their_significant_digits() {
        assert_eq!(ratio(0.97), "0.97");
        assert_eq!(ratio(1.5), "1.50");
        assert_eq!(ratio(0.0143), "0.0143");
        assert_eq!(ratio(0.00082), "0.000820");
        assert_eq!(ratio(0.0), "0.00");
    }

    #[test]
    fn quantiles_of_sorted_values() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    #[test]
    fn a_section_renders_as_a_markdown_table_with_its_caption() {
        let ctx = Context {
            command: "bench/run api".into(),
            date: "2026-01-01 00:00 UTC".into(),
            machine: "2 CPUs".into(),
            commit: "abc".into(),
        };
        let mut table = Table::new(&["a", "b"]);
        table.row(vec!["1".into(), "2".into()]);
        let text = render_section(&ctx, &Section { title: "T".into(), table, notes: vec!["n".into()] });
        assert_eq!(
            text,
            "## T\n\n`bench/run api` — 2026-01-01 00:00 UTC — 2 CPUs — keyfleet abc\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- n\n\n"
        );
    }
}
