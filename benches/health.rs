//! Health-monitor benchmark (plain `main`, run with `cargo bench --bench health`): CPU and memory
//! of the probe engine running 1,000 HTTP probes at a 1 s interval against local servers.
//!
//! The servers run in a child process (this binary re-executed with `--serve-child`), so the
//! numbers measured here — CPU time and resident memory read from `/proc/self` — are the probe
//! engine's alone: one Tokio runtime with two worker threads (the daemon's production shape on a
//! 2-core machine), the monitor's 1,000 probe tasks, one new TCP connection and HTTP request per
//! check (the probes do not pool connections, by design), hysteresis, verdicts and metrics.
//!
//! Knobs (environment): `FAILOVERD_BENCH_PROBES` (default 1000), `FAILOVERD_BENCH_SECS` (measured
//! window, default 30; a 5 s warm-up comes first), `FAILOVERD_BENCH_LISTENERS` (server ports the
//! probes are spread over, default 10).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use failoverd::config::{Duration as ConfigDuration, HealthConfig, ProbeConfig, ProbeKind};
use failoverd::health::{HealthMonitor, HealthPorts, ProbeState};
use prometheus::Registry;

const WARMUP: Duration = Duration::from_secs(5);

fn env_or(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--serve-child") {
        return serve_child();
    }
    let probes = usize::try_from(env_or("FAILOVERD_BENCH_PROBES", 1000)?)?;
    let seconds = env_or("FAILOVERD_BENCH_SECS", 30)?;
    let listeners = env_or("FAILOVERD_BENCH_LISTENERS", 10)?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve-child")
        .env("FAILOVERD_BENCH_LISTENERS", listeners.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start the server child")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no child stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let ports: Vec<u16> = line
        .trim()
        .strip_prefix("PORTS ")
        .ok_or_else(|| anyhow!("unexpected line from the server child: {line:?}"))?
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure(&ports, probes, Duration::from_secs(seconds)));
    // Closing the child's stdin ends it.
    drop(child.stdin.take());
    let _ = child.wait();
    result
}

/// The samples of `registry` in the text exposition format, as (series, value) pairs.
fn samples(registry: &Registry) -> Vec<(String, f64)> {
    failoverd::telemetry::render(registry)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// `/proc` reports CPU times in `USER_HZ` ticks, which Linux fixes at 100 per second on every
/// architecture (independently of the kernel's `HZ`).
const USER_HZ: f64 = 100.0;

/// Process CPU seconds (user + system, 10 ms resolution) and resident bytes, from `/proc/self`.
/// (The Prometheus process collector rounds CPU time to whole seconds, too coarse here.)
fn process_usage() -> (f64, f64) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may contain spaces) start at field 3 (state);
            // utime and stime are fields 14 and 15.
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / USER_HZ)
        })
        .unwrap_or(0.0);
    (cpu, status_kib("VmRSS:") * 1024.0)
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Successful and other checks, and the probe-duration histogram's sum and count.
fn probe_totals(registry: &Registry) -> (f64, f64, f64, f64) {
    let (mut ok, mut failed, mut sum, mut count) = (0.0, 0.0, 0.0, 0.0);
    for (series, value) in samples(registry) {
        if series.starts_with("failoverd_probe_checks_total{") {
            if series.contains(r#"result="success""#) {
                ok += value;
            } else {
                failed += value;
            }
        } else if series.starts_with("failoverd_probe_duration_seconds_sum{") {
            sum += value;
        } else if series.starts_with("failoverd_probe_duration_seconds_count{") {
            count += value;
        }
    }
    (ok, failed, sum, count)
}

async fn measure(ports: &[u16], probes: usize, window: Duration) -> anyhow::Result<()> {
    let (_, rss_before) = process_usage();

    let config = HealthConfig {
        unhealthy_after: 3,
        healthy_after: 2,
        min_failing: 2,
        require_distinct_kinds: false,
        probes: (0..probes)
            .map(|i| {
                let port = ports[i % ports.len()];
                ProbeConfig {
                    name: format!("probe-{i:04}"),
                    region: if i % 2 == 0 { "us-east-1" } else { "us-west-2" }.to_owned(),
                    kind: ProbeKind::Http,
                    interval: ConfigDuration::from_secs(1),
                    timeout: ConfigDuration::from_secs(1),
                    url: Some(format!("http://127.0.0.1:{port}/healthz/{i}")),
                    method: None,
                    expect_status: None,
                    body_contains: Some("ok".to_owned()),
                    tls_verify: None,
                    address: None,
                    hostname: None,
                    expect_address: None,
                    health_check_id: None,
                    min_healthy_fraction: None,
                    alarm_name: None,
                }
            })
            .collect(),
    };
    let registry = Registry::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = HealthMonitor::spawn_until(&config, HealthPorts::default(), &registry, async {
        let _ = stopped.await;
    })?;

    tokio::time::sleep(WARMUP).await;
    let up_at_start = handle
        .snapshot()
        .probes
        .iter()
        .filter(|p| p.state == ProbeState::Up)
        .count();
    let (cpu0, _) = process_usage();
    let (ok0, failed0, sum0, count0) = probe_totals(&registry);
    let t0 = Instant::now();
    let mut rss_max: f64 = 0.0;
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(process_usage().1);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rss1) = process_usage();
    let (ok1, failed1, sum1, count1) = probe_totals(&registry);
    let snapshot = handle.snapshot();
    let up_at_end = snapshot
        .probes
        .iter()
        .filter(|p| p.state == ProbeState::Up)
        .count();
    let _ = stop.send(());
    handle.stopped().await;

    let checks = (ok1 - ok0) + (failed1 - failed0);
    let cpu = cpu1 - cpu0;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    println!("health monitor benchmark");
    println!(
        "  probes                 {probes} HTTP, 1 s interval, over {} local ports (servers in a child process)",
        ports.len()
    );
    println!(
        "  measured window        {elapsed:.1} s (after {} s warm-up)",
        WARMUP.as_secs()
    );
    println!(
        "  checks                 {checks:.0} ({:.0}/s, expected {probes}/s), failed {:.0}",
        checks / elapsed,
        failed1 - failed0
    );
    println!(
        "  mean check duration    {:.2} ms",
        if count1 > count0 {
            (sum1 - sum0) / (count1 - count0) * 1000.0
        } else {
            0.0
        }
    );
    println!("  probes up              {up_at_start} at start, {up_at_end} at end of the window");
    println!(
        "  CPU                    {cpu:.2} s in {elapsed:.1} s = {:.1} % of one core ({:.1} µs per check)",
        100.0 * cpu / elapsed,
        if checks > 0.0 { cpu / checks * 1e6 } else { 0.0 }
    );
    println!(
        "  RSS                    {:.1} MiB before the monitor, {:.1} MiB at end, {:.1} MiB max in window, {:.1} MiB peak (VmHWM)",
        mib(rss_before),
        mib(rss1),
        mib(rss_max),
        mib(status_kib("VmHWM:") * 1024.0)
    );
    if checks < 0.9 * probes as f64 * elapsed {
        bail!("the monitor ran fewer than 90 % of the scheduled checks");
    }
    Ok(())
}

/// The server side: `FAILOVERD_BENCH_LISTENERS` axum listeners answering `ok`, until stdin closes.
fn serve_child() -> anyhow::Result<()> {
    let listeners = usize::try_from(env_or("FAILOVERD_BENCH_LISTENERS", 10)?)?;
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = axum::Router::new().route("/healthz/{n}", axum::routing::get(|| async { "ok" }));
        let mut ports = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..listeners {
            let listener =
                tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
            ports.push(listener.local_addr()?.port().to_string());
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }));
        }
        println!("PORTS {}", ports.join(","));
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    })
}
