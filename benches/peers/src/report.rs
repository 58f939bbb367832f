//! The children's figures, merged into one markdown table with the targets' ratios.

use std::fmt::Write;
use std::time::SystemTime;

/// Sequential calls, or `k` calls in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One call after the other; latency percentiles are set.
    Seq,
    /// `k` callers on one connection.
    InFlight(usize),
}

impl Mode {
    /// `seq` or the number in flight, as the children print it.
    pub fn key(self) -> String {
        match self {
            Mode::Seq => "seq".into(),
            Mode::InFlight(k) => k.to_string(),
        }
    }

    fn label(self) -> String {
        match self {
            Mode::Seq => "sequential".into(),
            Mode::InFlight(k) => format!("{k} in flight"),
        }
    }
}

const MODES: [Mode; 4] = [
    Mode::Seq,
    Mode::InFlight(1),
    Mode::InFlight(16),
    Mode::InFlight(128),
];

/// One figure from one child in one round.
#[derive(Clone, Debug)]
pub struct Fig {
    round: usize,
    system: String,
    path: String,
    mode: Mode,
    threads: String,
    calls: f64,
    p50: Option<f64>,
    p99: Option<f64>,
}

impl Fig {
    /// Parses a child's `fig\t…` line; other lines are not figures.
    pub fn parse(line: &str, round: usize) -> Option<Fig> {
        let mut it = line.split('\t');
        if it.next()? != "fig" {
            return None;
        }
        let system = it.next()?.to_string();
        let path = it.next()?.to_string();
        let mode = match it.next()? {
            "seq" => Mode::Seq,
            k => Mode::InFlight(k.parse().ok()?),
        };
        let threads = it.next()?.to_string();
        let calls = it.next()?.parse().ok()?;
        let opt = |s: Option<&str>| s.and_then(|s| s.parse().ok());
        let p50 = opt(it.next());
        let p99 = opt(it.next());
        Some(Fig {
            round,
            system,
            path,
            mode,
            threads,
            calls,
            p50,
            p99,
        })
    }
}

/// What the header says about the run.
pub struct Meta {
    /// When the run started.
    pub started: SystemTime,
    /// Rounds of the three children.
    pub rounds: usize,
    /// Measured seconds per figure (after a warm-up of a fifth of it).
    pub secs: f64,
    /// `/proc/loadavg`'s three figures before the run.
    pub load_before: String,
    /// …and after it.
    pub load_after: String,
    /// Bytes of toolwire's `execute` frame in JSON.
    pub json_frame: usize,
    /// …and in postcard.
    pub postcard_frame: usize,
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// `YYYY-MM-DD HH:MM UTC`.
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Median, minimum and maximum; `None` for no values.
fn spread(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((med, v[0], v[n - 1]))
}

/// `12,345`.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.split_at(usize::from(s.starts_with('-')));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// A cell: the median, with the range over rounds when there is more than one.
fn cell(s: Option<(f64, f64, f64)>, rounds: usize, f: impl Fn(f64) -> String) -> String {
    match s {
        None => "–".into(),
        Some((m, lo, hi)) if rounds > 1 => format!("{} ({}–{})", f(m), f(lo), f(hi)),
        Some((m, _, _)) => f(m),
    }
}

struct Run<'a> {
    figs: &'a [Fig],
    meta: &'a Meta,
}

impl Run<'_> {
    fn get(
        &self,
        round: usize,
        system: &str,
        path: &str,
        mode: Mode,
        threads: &str,
    ) -> Option<&Fig> {
        self.figs.iter().find(|f| {
            f.round == round
                && f.system == system
                && f.path == path
                && f.mode == mode
                && f.threads == threads
        })
    }

    fn all(&self, system: &str, path: &str, mode: Mode, threads: &str) -> Vec<&Fig> {
        self.figs
            .iter()
            .filter(|f| {
                f.system == system && f.path == path && f.mode == mode && f.threads == threads
            })
            .collect()
    }

    /// The raw baseline's path for a toolwire path (`ws/json` → `ws 152 B`).
    fn raw_path(&self, path: &str) -> String {
        let (transport, enc) = path.split_once('/').unwrap_or((path, "json"));
        let size = if enc == "json" {
            self.meta.json_frame
        } else {
            self.meta.postcard_frame
        };
        format!("{transport} {size} B")
    }

    /// Per-round ratios of a toolwire figure to another system's, same mode: p50 ours / theirs
    /// for sequential calls (lower is better), calls/s ours / theirs in flight (higher is better).
    fn ratio(
        &self,
        path: &str,
        mode: Mode,
        threads: &str,
        other: (&str, &str, &str),
    ) -> Option<(f64, f64, f64)> {
        let (system, opath, othreads) = other;
        let v = self
            .all("toolwire", path, mode, threads)
            .into_iter()
            .filter_map(|ours| {
                let theirs = self.get(ours.round, system, opath, mode, othreads)?;
                Some(match mode {
                    Mode::Seq => ours.p50? / theirs.p50?,
                    Mode::InFlight(_) => ours.calls / theirs.calls,
                })
            })
            .collect();
        spread(v)
    }

    fn others(&self, path: &str, threads: &str) -> [Option<(String, String, String)>; 4] {
        let ws = path.starts_with("ws");
        let peer = |s: &str, p: &str| Some((s.to_string(), p.to_string(), "tokio 2".to_string()));
        [
            Some(("raw".into(), self.raw_path(path), threads.to_string())),
            if ws { peer("jsonrpsee", "ws") } else { None },
            if ws { None } else { peer("tarpc-json", "tcp") },
            if ws {
                None
            } else {
                peer("tarpc-bincode", "tcp")
            },
        ]
    }
}

const PATHS: [&str; 4] = ["ws/json", "ws/postcard", "tcp/json", "tcp/postcard"];

/// The whole report: header, the table of every figure, and the targets.
pub fn render(meta: &Meta, figs: &[Fig]) -> String {
    let run = Run { figs, meta };
    let r = meta.rounds;
    let mut threads: Vec<String> = vec![];
    for f in figs.iter().filter(|f| f.system == "toolwire") {
        if !threads.contains(&f.threads) {
            threads.push(f.threads.clone());
        }
    }
    threads.sort();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "peers: {} · {} round(s) · {} s per figure after {} s warm-up · load average {} before, {} after",
        utc(meta.started),
        r,
        meta.secs,
        meta.secs / 5.0,
        meta.load_before,
        meta.load_after
    );
    let _ = writeln!(
        o,
        "toolwire's execute frame: {} B JSON, {} B postcard; raw echoes carry messages of those sizes. \
         Peers on tokio with 2 workers. Figures: median over rounds (range).",
        meta.json_frame, meta.postcard_frame
    );
    let _ = writeln!(
        o,
        "Ratios are taken within each round: sequential rows p50 ours / theirs (≤ 1 is ours faster), \
         in-flight rows calls/s ours / theirs (≥ 1 is ours faster)."
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| scenario | threads | calls/s | p50 µs | p99 µs | vs raw | vs jsonrpsee | vs tarpc-json | vs tarpc-bincode |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut row = |system: &str, path: &str, mode: Mode, threads: &str, ratios: [String; 4]| {
        let fs = run.all(system, path, mode, threads);
        if fs.is_empty() {
            return;
        }
        let calls = spread(fs.iter().map(|f| f.calls).collect());
        let p50 = spread(fs.iter().filter_map(|f| f.p50).collect());
        let p99 = spread(fs.iter().filter_map(|f| f.p99).collect());
        let _ = writeln!(
            o,
            "| {system} {path} {} | {threads} | {} | {} | {} | {} |",
            mode.label(),
            cell(calls, r, thousands),
            cell(p50, r, |x| format!("{x:.0}")),
            cell(p99, r, |x| format!("{x:.0}")),
            ratios.join(" | ")
        );
    };
    let dash = || ["–".to_string(), "–".into(), "–".into(), "–".into()];
    for t in &threads {
        for path in PATHS {
            for mode in MODES {
                let ratios = run.others(path, t).map(|other| match other {
                    Some((s, p, th)) => cell(run.ratio(path, mode, t, (&s, &p, &th)), r, |x| {
                        format!("{x:.2}")
                    }),
                    None => "–".into(),
                });
                row("toolwire", path, mode, t, ratios);
            }
        }
    }
    for t in &threads {
        for path in PATHS {
            let raw = run.raw_path(path);
            for mode in MODES {
                row("raw", &raw, mode, t, dash());
            }
        }
    }
    for (system, path) in [
        ("jsonrpsee", "ws".to_string()),
        ("tarpc-json", "tcp".into()),
        ("tarpc-bincode", "tcp".into()),
        ("raw-tokio", format!("tcp {} B", meta.json_frame)),
    ] {
        for mode in MODES {
            row(system, &path, mode, "tokio 2", dash());
        }
    }
    let _ = writeln!(o);
    o.push_str(&targets(&run, &threads));
    o
}

/// The targets of issue 11, judged on the median ratios.
fn targets(run: &Run, threads: &[String]) -> String {
    let r = run.meta.rounds;
    let mut o = String::new();
    let _ = writeln!(o, "| target | threads | {} |", PATHS.join(" | "));
    let _ = writeln!(o, "|---|---|{}", "---:|".repeat(PATHS.len()));
    let (mut p1, mut p3) = ((0, 0), (0, 0));
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    type Check = (&'static str, Mode, usize, fn(f64) -> bool, bool);
    let checks: [Check; 8] = [
        ("P1 p50 / raw p50 ≤ 1.25", Mode::Seq, 0, |x| x <= 1.25, true),
        (
            "P1 p50 / jsonrpsee p50 ≤ 1",
            Mode::Seq,
            1,
            |x| x <= 1.0,
            true,
        ),
        (
            "P1 p50 / tarpc-json p50 ≤ 1",
            Mode::Seq,
            2,
            |x| x <= 1.0,
            true,
        ),
        (
            "P1 p50 / tarpc-bincode p50 ≤ 1",
            Mode::Seq,
            3,
            |x| x <= 1.0,
            true,
        ),
        (
            "P3 128 in flight / raw ≥ 0.8",
            Mode::InFlight(128),
            0,
            |x| x >= 0.8,
            false,
        ),
        (
            "P3 128 in flight / jsonrpsee ≥ 1.5",
            Mode::InFlight(128),
            1,
            |x| x >= 1.5,
            false,
        ),
        (
            "P3 128 in flight / tarpc-json ≥ 1.5",
            Mode::InFlight(128),
            2,
            |x| x >= 1.5,
            false,
        ),
        (
            "P3 128 in flight / tarpc-bincode ≥ 1.5",
            Mode::InFlight(128),
            3,
            |x| x >= 1.5,
            false,
        ),
    ];
    for t in threads {
        for (name, mode, which, ok, is_p1) in checks {
            let cells: Vec<String> = PATHS
                .iter()
                .map(|path| {
                    let Some((s, p, th)) = run.others(path, t)[which].clone() else {
                        return "–".to_string();
                    };
                    match run.ratio(path, mode, t, (&s, &p, &th)) {
                        Some(v) => {
                            let met = ok(v.0);
                            let tally = if is_p1 { &mut p1 } else { &mut p3 };
                            tally.1 += 1;
                            tally.0 += usize::from(met);
                            format!("{} {}", cell(Some(v), r, |x| format!("{x:.2}")), mark(met))
                        }
                        None => "?".into(),
                    }
                })
                .collect();
            let _ = writeln!(o, "| {name} | {t} | {} |", cells.join(" | "));
        }
        // Throughput never falls as in-flight grows, on the medians.
        let cells: Vec<String> = PATHS
            .iter()
            .map(|path| {
                let med = |k| {
                    spread(
                        run.all("toolwire", path, Mode::InFlight(k), t)
                            .iter()
                            .map(|f| f.calls)
                            .collect(),
                    )
                    .map(|s| s.0)
                };
                match (med(1), med(16), med(128)) {
                    (Some(a), Some(b), Some(c)) => {
                        let met = a <= b && b <= c;
                        p3.1 += 1;
                        p3.0 += usize::from(met);
                        let k = |x: f64| format!("{:.1}k", x / 1000.0);
                        format!("{} → {} → {} {}", k(a), k(b), k(c), mark(met))
                    }
                    _ => "?".into(),
                }
            })
            .collect();
        let _ = writeln!(
            o,
            "| P3 calls/s 1 → 16 → 128 never falls | {t} | {} |",
            cells.join(" | ")
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Targets met (on the median ratios): P1 {} of {} cells, P3 {} of {} cells.",
        p1.0, p1.1, p3.0, p3.1
    );
    o
}
