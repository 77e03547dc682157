//! The report: markdown tables and SVG plots from one results directory.
//!
//! Reads whichever of `api.json`, `inproc-N.json` and `scheduler.json` are there, writes
//! `results.md` (the tables `docs/benchmarks.md` quotes) and one SVG per plot into the output
//! directory, and prints the tables. Ratios are always taken between systems measured in the
//! same run. (`bench/launch_ovn.py` and `bench/migration_ovn.py` print their own tables.)

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

fn load(dir: &Path, name: &str) -> Result<Option<Value>> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?))
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn u(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Median, min and max of some samples.
pub fn spread(mut samples: Vec<f64>) -> Option<(f64, f64, f64)> {
    samples.retain(|x| x.is_finite());
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    let median = if n % 2 == 1 { samples[n / 2] } else { (samples[n / 2 - 1] + samples[n / 2]) / 2.0 };
    Some((median, samples[0], samples[n - 1]))
}

fn ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(127, 127, 127),
];

fn api_tables(api: &Value, md: &mut String) -> Result<()> {
    let runs = api["runs"].as_array().cloned().unwrap_or_default();
    writeln!(md, "### API (SigV4 on every request)\n")?;
    writeln!(md, "Hosts: `{}`.\n", s(api, "hosts"))?;
    writeln!(md, "DescribeInstances by one random id, closed loop:\n")?;
    writeln!(md, "| stored | concurrency | bare hyper req/s | Stratus req/s (p50 / p99) | moto req/s (p50 / p99) | Stratus / bare | Stratus / moto |")?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    let by_id: Vec<&Value> = runs.iter().filter(|r| s(r, "scenario") == "describe-by-id").collect();
    // Each system's run is set against the bare run just before it at its concurrency (the
    // bare server runs first in every stage and round).
    let mut paired: Vec<(&Value, f64)> = Vec::new();
    {
        let mut bare: BTreeMap<u64, f64> = BTreeMap::new();
        for run in &by_id {
            if s(run, "system") == "bare-hyper" {
                bare.insert(u(run, "concurrency"), f(run, "requests_per_sec"));
            } else {
                paired.push((run, bare.get(&u(run, "concurrency")).copied().unwrap_or(f64::NAN)));
            }
        }
    }
    // The table shows each stage's last round.
    let mut rows: BTreeMap<(u64, u64), BTreeMap<String, &Value>> = BTreeMap::new();
    let mut bare_by_stage: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    for (run, bare) in &paired {
        let key = (u(run, "stored"), u(run, "concurrency"));
        rows.entry(key).or_default().insert(s(run, "system").to_owned(), run);
        if s(run, "system") == "stratus" {
            bare_by_stage.insert(key, *bare);
        }
    }
    for ((stored, c), systems) in &rows {
        let bare = bare_by_stage.get(&(*stored, *c)).copied().unwrap_or(f64::NAN);
        let cell = |name: &str| {
            systems.get(name).map_or("–".to_owned(), |r| {
                format!("{:.0} ({} / {})", f(r, "requests_per_sec"), ms(f(r, "p50_us")), ms(f(r, "p99_us")))
            })
        };
        let rate = |name: &str| systems.get(name).map_or(f64::NAN, |r| f(r, "requests_per_sec"));
        let ratio =
            |a: f64, b: f64| if a.is_finite() && b.is_finite() { format!("{:.2}", a / b) } else { "–".into() };
        writeln!(
            md,
            "| {stored} | {c} | {bare:.0} | {} | {} | {} | {} |",
            cell("stratus"),
            cell("moto"),
            ratio(rate("stratus"), bare),
            ratio(rate("stratus"), rate("moto"))
        )?;
    }
    let mut rounds: BTreeMap<(u64, u64), Vec<(f64, f64)>> = BTreeMap::new();
    for (run, bare) in paired.iter().filter(|(run, _)| s(run, "system") == "stratus") {
        let cpu = run["server_cpu_us"].as_f64().unwrap_or(f64::NAN);
        rounds
            .entry((u(run, "stored"), u(run, "concurrency")))
            .or_default()
            .push((f(run, "requests_per_sec") / bare, cpu));
    }
    if rounds.values().any(|r| r.len() > 1) {
        writeln!(
            md,
            "\nStratus / bare over the rounds, each Stratus window against the bare window just before it:\n"
        )?;
        writeln!(md, "| stored | concurrency | rounds | Stratus / bare, median (min–max) | Stratus CPU per request, median (min–max) |")?;
        writeln!(md, "|---|---|---|---|---|")?;
        for ((stored, c), pairs) in &rounds {
            let spread = |mut v: Vec<f64>, digits: usize| {
                v.sort_by(f64::total_cmp);
                let median =
                    if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
                format!("{median:.digits$} ({:.digits$}–{:.digits$})", v[0], v[v.len() - 1])
            };
            let ratios = spread(pairs.iter().map(|p| p.0).collect(), 2);
            let cpu = spread(pairs.iter().map(|p| p.1).collect(), 0);
            writeln!(md, "| {stored} | {c} | {} | {ratios} | {cpu} µs |", pairs.len())?;
        }
    }
    writeln!(md, "\nOne request at a time:\n")?;
    writeln!(md, "| scenario | stored | Stratus p50 / p99 | moto p50 / p99 | moto / Stratus (p50) |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    let mut singles: BTreeMap<(String, u64), BTreeMap<String, &Value>> = BTreeMap::new();
    for run in runs.iter().filter(|r| s(r, "scenario") != "describe-by-id") {
        let stored = if s(run, "scenario").starts_with("run-instances") { 0 } else { u(run, "stored") };
        singles.entry((s(run, "scenario").to_owned(), stored)).or_default().insert(s(run, "system").to_owned(), run);
    }
    for ((scenario, stored), systems) in &singles {
        let cell = |name: &str| {
            systems.get(name).map_or("–".to_owned(), |r| {
                let errors = u(r, "errors");
                let mut text = format!("{} / {}", ms(f(r, "p50_us")), ms(f(r, "p99_us")));
                if errors > 0 {
                    write!(text, " ({errors} errors)").ok();
                }
                text
            })
        };
        let p50 = |name: &str| systems.get(name).map_or(f64::NAN, |r| f(r, "p50_us"));
        let ratio = p50("moto") / p50("stratus");
        let stored = if *stored == 0 { "–".to_owned() } else { stored.to_string() };
        writeln!(
            md,
            "| {scenario} | {stored} | {} | {} | {} |",
            cell("stratus"),
            cell("moto"),
            if ratio.is_finite() { format!("{ratio:.0}×") } else { "–".into() }
        )?;
    }
    writeln!(md, "\nResident memory:\n")?;
    writeln!(md, "| system | stored | RSS |")?;
    writeln!(md, "|---|---|---|")?;
    for rss in api["rss"].as_array().into_iter().flatten() {
        writeln!(md, "| {} | {} | {:.0} MiB |", s(rss, "system"), u(rss, "stored"), f(rss, "rss_mib"))?;
    }
    let idle = api["idle"].as_array().into_iter().flatten().collect::<Vec<_>>();
    if !idle.is_empty() {
        writeln!(md, "\nIdle (how long the work seeding left kept the system busy; then 5 s without requests: the system's background work, and the machine's busy CPU with it):\n")?;
        writeln!(md, "| system | stored | busy after seeding | system CPU | machine CPU |")?;
        writeln!(md, "|---|---|---|---|---|")?;
        for point in idle {
            writeln!(
                md,
                "| {} | {} | {:.0} s | {:.0} ms/s | {:.0} ms/s |",
                s(point, "system"),
                u(point, "stored"),
                f(point, "quiet_after_s"),
                f(point, "server_ms_per_s"),
                f(point, "machine_ms_per_s")
            )?;
        }
    }
    writeln!(md, "\nSeeding (launching the instances of each stage, and waiting for Stratus's hosts to run them):\n")?;
    writeln!(md, "| system | stored | seconds |")?;
    writeln!(md, "|---|---|---|")?;
    for seed in api["seeding"].as_array().into_iter().flatten() {
        writeln!(md, "| {} | {} | {:.0} |", s(seed, "system"), u(seed, "stored"), f(seed, "seconds"))?;
    }
    writeln!(md)?;
    Ok(())
}

/// Each series as a line with its points marked, and a legend.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
    legend: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart.configure_series_labels().position(legend).background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    Ok(())
}

fn api_plots(api: &Value, out: &Path) -> Result<()> {
    let runs = api["runs"].as_array().cloned().unwrap_or_default();
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut bare: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for run in runs.iter().filter(|r| s(r, "scenario") == "describe-by-id") {
        let c = u(run, "concurrency");
        if s(run, "system") == "bare-hyper" {
            bare.entry(c).or_default().push(f(run, "requests_per_sec"));
        } else {
            let name = format!("{} ({} stored)", s(run, "system"), u(run, "stored"));
            series.entry(name).or_default().push((c as f64, f(run, "requests_per_sec")));
        }
    }
    let bare_points: Vec<(f64, f64)> =
        bare.into_iter().filter_map(|(c, rates)| Some((c as f64, spread(rates)?.0))).collect();
    series.insert("bare hyper (median)".into(), bare_points);
    let max_rate = series.values().flatten().map(|p| p.1).fold(10.0, f64::max);
    let path = out.join("api-describe-by-id.svg");
    let root = SVGBackend::new(&path, (860, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("DescribeInstances by id, SigV4: requests/s by concurrency", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..80f64).log_scale(), (1f64..max_rate * 2.0).log_scale())?;
    chart.configure_mesh().x_desc("concurrent connections").y_desc("requests/s").draw()?;
    draw_lines(&mut chart, &series, SeriesLabelPosition::LowerRight)?;
    root.present()?;

    let mut rss: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for point in api["rss"].as_array().into_iter().flatten() {
        rss.entry(s(point, "system").to_owned()).or_default().push((u(point, "stored") as f64, f(point, "rss_mib")));
    }
    let max_stored = rss.values().flatten().map(|p| p.0).fold(1.0, f64::max);
    let max_rss = rss.values().flatten().map(|p| p.1).fold(1.0, f64::max);
    let path = out.join("api-rss.svg");
    let root = SVGBackend::new(&path, (860, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Resident memory by instances stored", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..max_stored * 1.05, 0f64..max_rss * 1.15)?;
    chart.configure_mesh().x_desc("instances stored").y_desc("RSS (MiB)").draw()?;
    draw_lines(&mut chart, &rss, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

fn inproc_table(costs: &[Value], md: &mut String) -> Result<()> {
    writeln!(md, "### Stratus's own CPU per request (the request handler in a loop, no network)\n")?;
    writeln!(md, "| request | instances stored | µs per request | calls |")?;
    writeln!(md, "|---|---|---|---|")?;
    for run in costs {
        for c in run["costs"].as_array().into_iter().flatten() {
            writeln!(
                md,
                "| {} | {} | {:.1} | {} |",
                s(c, "request"),
                u(c, "instances"),
                f(c, "micros_per_request"),
                u(c, "iterations")
            )?;
        }
    }
    writeln!(md)?;
    Ok(())
}

fn scheduler_table(sched: &Value, md: &mut String) -> Result<()> {
    writeln!(
        md,
        "### Scheduler: one placement over {} hosts holding {} instances\n",
        u(sched, "hosts"),
        u(sched, "instances")
    )?;
    writeln!(md, "| policy | instances placed | median | min–max | repetitions |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for t in sched["timings"].as_array().into_iter().flatten() {
        writeln!(
            md,
            "| {} | {} | {} | {}–{} | {} |",
            s(t, "policy"),
            u(t, "count"),
            ms(f(t, "median_us")),
            ms(f(t, "min_us")),
            ms(f(t, "max_us")),
            u(t, "repetitions")
        )?;
    }
    writeln!(md)?;
    Ok(())
}

pub fn run(results: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut md = String::new();
    if let Some(api) = load(results, "api.json")? {
        api_tables(&api, &mut md)?;
        api_plots(&api, out)?;
        writeln!(md, "Machine: {}\n", api["machine"])?;
    }
    let mut inproc: Vec<(u64, Value)> = Vec::new();
    for entry in std::fs::read_dir(results)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.strip_prefix("inproc-").and_then(|n| n.strip_suffix(".json")?.parse().ok()) {
            inproc.extend(load(results, &name)?.map(|v| (n, v)));
        }
    }
    inproc.sort_by_key(|(n, _)| *n);
    if !inproc.is_empty() {
        inproc_table(&inproc.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), &mut md)?;
    }
    if let Some(sched) = load(results, "scheduler.json")? {
        scheduler_table(&sched, &mut md)?;
    }
    std::fs::write(out.join("results.md"), &md)?;
    println!("{md}");
    Ok(())
}
