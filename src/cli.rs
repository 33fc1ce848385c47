//! The command line: `serve`, `validate`, `hash-token` and the API client commands (`report` in
//! [`report`], the `drill` round trip in [`drill`]).
//!
//! Exit codes (also in `docs/operations.md`):
//! - `0` success;
//! - `1` a runtime failure (the daemon could not start or failed; the API could not be reached);
//! - `2` invalid configuration or command-line usage (also clap's own code for usage errors);
//! - `3` the API refused the request (the error's code and message are printed);
//! - `4` `drill`: a run of the round trip did not succeed (its report says why); `--follow`: the
//!   run failed;
//! - `5` `--follow`: the run was aborted;
//! - `6` `--follow`: the run stopped for an operator (needs_operator);
//! - `7` `status`: something is degraded (the problems are listed last).
//!
//! Client commands write their output through `stdout`, so a closed pipe
//! (`failoverd report <id> | head`) ends them quietly instead of panicking.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::auth::{generate_token, hash_token, Role};
use crate::client::{ApiClient, ClientError};
use crate::config::{self, LogFormat};

mod drill;
mod follow;
mod report;
mod status;
mod stdout;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_INVALID: u8 = 2;
pub const EXIT_REFUSED: u8 = 3;
pub const EXIT_RUN_FAILED: u8 = 4;
pub const EXIT_RUN_ABORTED: u8 = 5;
pub const EXIT_RUN_NEEDS_OPERATOR: u8 = 6;
pub const EXIT_DEGRADED: u8 = 7;

#[derive(Parser, Debug)]
#[command(
    name = "failoverd",
    version,
    about = "Keeps a cold AWS region ready to take over from the hot one, and performs the takeover."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Check a configuration file: prints a one-line summary (exit 0) or every error (exit 2).
    Validate {
        /// The configuration file.
        #[arg(env = "FAILOVERD_CONFIG")]
        config: PathBuf,
        /// Also check, read-only against AWS, what the configuration relies on there: with
        /// `dns.mode: data_plane`, the signal's alarms, health checks and records (exit 2 when
        /// something is not wired, 1 when AWS cannot be read).
        #[arg(long)]
        aws: bool,
    },
    /// Print the SHA-256 of a token for the tokens file (reads the token from stdin), or
    /// generate a new token with --generate.
    HashToken(HashTokenArgs),
    /// Where things stand, on one screen: regions and their health, topology, replication lag,
    /// Cognito, GitOps, policy, readiness, leadership, the active run (GET /v1/status). Exit 7
    /// when something is degraded (listed last), 0 when all is well; `-o json` prints the whole
    /// document.
    Status {
        /// Show the details: every probe, readiness check, component and blocker.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the plans that can be run, what each moves and its parameters (GET /v1/plans).
    Plans {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List runs, or show one run with its steps, timeline and report.
    Runs {
        /// A run id: show that run.
        id: Option<String>,
        /// Only runs of this plan.
        #[arg(long)]
        plan: Option<String>,
        /// Only runs that have not finished.
        #[arg(long)]
        unfinished: bool,
        /// With a run id: stream its events as a live timeline until it ends, and exit with its
        /// outcome (0 succeeded, 4 failed, 5 aborted, 6 needs an operator).
        #[arg(long, short, requires = "id")]
        follow: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Start a run of a plan (POST /v1/runs).
    Run(RunArgs),
    /// Approve a run waiting for approval.
    Approve {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Abort a run: no further step starts and completed steps are compensated in reverse order.
    Abort {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a run's report (GET /v1/runs/{id}/report): Markdown for a change ticket, or
    /// `--output json`. A run not finished yet gets the report so far.
    Report {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A drill round trip: fail over to the standby region with `drill: true`, follow the run,
    /// fail back, follow it, then print both reports, the total wall time and the sum of RTOs.
    /// Exit 4 when a run did not succeed (no failback after a failed failover).
    Drill(drill::DrillArgs),
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The plan, e.g. `selftest`, `dns-switchover`.
    pub plan: String,
    /// Why the run is started (kept in the journal and the audit log).
    #[arg(long)]
    pub reason: String,
    /// graceful (staged, no data loss) or ungraceful (fastest, bounded data loss).
    #[arg(long, value_enum, default_value = "graceful")]
    pub mode: ModeArg,
    /// Describe what each step would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// A drill: the report measures RTO/RPO and each step's duration.
    #[arg(long)]
    pub drill: bool,
    /// A plan parameter as key=value (repeatable); the value is parsed as JSON when it can be,
    /// e.g. `--param steps=3 --param target_region=us-west-2`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Sent as the `Idempotency-Key` header: a retried command returns the same run.
    #[arg(long, env = "FAILOVERD_IDEMPOTENCY_KEY")]
    pub idempotency_key: Option<String>,
    /// Follow the run as a live timeline until it ends, and exit with its outcome (as
    /// `runs <id> --follow`).
    #[arg(long, short)]
    pub follow: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Graceful,
    Ungraceful,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(short, long, env = "FAILOVERD_CONFIG")]
    pub config: PathBuf,
    /// Listen address, overriding `server.listen`.
    #[arg(long, env = "FAILOVERD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Log format, overriding `log.format`.
    #[arg(long, env = "FAILOVERD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter (`RUST_LOG` syntax), overriding `log.level`; `RUST_LOG` is read too.
    #[arg(long, env = "FAILOVERD_LOG")]
    pub log_level: Option<String>,
}

#[derive(Args, Debug)]
pub struct HashTokenArgs {
    /// Generate a new random token instead of reading one from stdin.
    #[arg(long)]
    pub generate: bool,
    /// With --generate: the name for the tokens-file entry.
    #[arg(long, default_value = "operator")]
    pub name: String,
    /// With --generate: the role for the tokens-file entry.
    #[arg(long, value_enum, default_value = "operator")]
    pub role: RoleArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
        }
    }
}

/// Where the API is and how to authenticate.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// Base URL of failoverd's API.
    #[arg(long, env = "FAILOVERD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A file holding the bearer token.
    #[arg(long, env = "FAILOVERD_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

impl ApiArgs {
    /// The token comes from `--token-file`, else from the `FAILOVERD_TOKEN` environment variable
    /// (never from a flag, where it would show in `ps`).
    fn client(&self) -> Result<ApiClient, String> {
        let token = match &self.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read token file {}: {e}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => std::env::var("FAILOVERD_TOKEN").ok(),
        };
        ApiClient::new(&self.url, token).map_err(|e| e.to_string())
    }
}

/// Parses the command line and runs the command; the binary's whole `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    ExitCode::from(run(cli))
}

fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate { config, aws } => validate(&config, aws),
        Command::HashToken(args) => hash_token_command(&args),
        Command::Serve(args) => serve(args),
        Command::Status { verbose, api } => status_command(&api, verbose),
        Command::Plans { api } => client_command_printing(
            &api,
            |client| async move { client.get::<serde_json::Value>("/v1/plans").await },
            print_plans,
        ),
        Command::Runs {
            id: Some(id),
            follow: true,
            api,
            ..
        } => with_client(&api, |client| async move {
            follow::follow(&client, &id, api.output, status::Paint::for_stdout()).await
        }),
        Command::Runs {
            id,
            plan,
            unfinished,
            api,
            ..
        } => {
            let path = match id {
                Some(id) => format!("/v1/runs/{}", encode_path(&id)),
                None => {
                    let mut q = vec![format!("unfinished={unfinished}")];
                    if let Some(p) = plan {
                        q.push(format!("plan={}", encode_path(&p)));
                    }
                    format!("/v1/runs?{}", q.join("&"))
                }
            };
            client_command(&api, |client| async move { client.get(&path).await })
        }
        Command::Run(args) => run_command(args),
        Command::Approve { id, api } => {
            let path = format!("/v1/runs/{}/approve", encode_path(&id));
            client_command(&api, |client| async move {
                client.post(&path, &serde_json::json!({}), &[]).await
            })
        }
        Command::Abort { id, api } => {
            let path = format!("/v1/runs/{}/abort", encode_path(&id));
            client_command(&api, |client| async move {
                client.post(&path, &serde_json::json!({}), &[]).await
            })
        }
        Command::Report { id, api } => report::command(&id, &api),
        Command::Drill(args) => drill::command(args),
    }
}

/// Keeps a path segment from changing the route (ids are UUIDs; anything else is escaped).
fn encode_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn run_command(args: RunArgs) -> u8 {
    let RunArgs {
        plan,
        reason,
        mode,
        dry_run,
        drill,
        params,
        idempotency_key,
        follow,
        api,
    } = args;
    let map = match parse_params(&params) {
        Ok(map) => map,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let body = serde_json::json!({
        "plan": plan,
        "mode": match mode { ModeArg::Graceful => "graceful", ModeArg::Ungraceful => "ungraceful" },
        "dry_run": dry_run,
        "drill": drill,
        "reason": reason,
        "params": serde_json::Value::Object(map),
    });
    let headers: Vec<(&str, String)> = idempotency_key
        .map(|k| vec![("Idempotency-Key", k)])
        .unwrap_or_default();
    if !follow {
        return client_command(&api, |client| async move {
            client.post("/v1/runs", &body, &headers).await
        });
    }
    let output = api.output;
    with_client(&api, |client| async move {
        let run: serde_json::Value = match client.post("/v1/runs", &body, &headers).await {
            Ok(run) => run,
            Err(e) => return report_error(&e),
        };
        let Some(id) = run.get("id").and_then(|v| v.as_str()) else {
            eprintln!("the API answered without a run id: {run}");
            return EXIT_FAILURE;
        };
        eprintln!("run {id} started; following it (Ctrl-C stops following, not the run)");
        follow::follow(&client, id, output, status::Paint::for_stdout()).await
    })
}

/// `failoverd status`: the status on one screen (or the document with `-o json`) and, with the
/// active run's view, exit 7 when something is degraded.
fn status_command(api: &ApiArgs, verbose: bool) -> u8 {
    let output = api.output;
    with_client(api, |client| async move {
        let status: serde_json::Value = match client.get("/v1/status").await {
            Ok(v) => v,
            Err(e) => return report_error(&e),
        };
        let run = match status
            .pointer("/engine/active_run")
            .and_then(|v| v.as_str())
        {
            Some(id) => client
                .get::<serde_json::Value>(&format!("/v1/runs/{}", encode_path(id)))
                .await
                .ok(),
            None => None,
        };
        let rendered = status::render(
            &status,
            run.as_ref(),
            verbose,
            status::Paint::for_stdout(),
            time::OffsetDateTime::now_utc(),
        );
        let text = match output {
            Output::Json => print_value(&status, Output::Json),
            Output::Text => rendered.text,
        };
        let code = if rendered.problems.is_empty() {
            EXIT_OK
        } else {
            EXIT_DEGRADED
        };
        stdout::exit_code(stdout::print(&text), code)
    })
}

/// Prints a client error; its exit code: the API refused (3), or could not be reached (1).
fn report_error(e: &ClientError) -> u8 {
    eprintln!("{e}");
    match e {
        ClientError::Api { .. } => EXIT_REFUSED,
        _ => EXIT_FAILURE,
    }
}

/// Runs `f` with an API client on a runtime; `f` returns the exit code.
fn with_client<F, Fut>(api: &ApiArgs, f: F) -> u8
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = u8>,
{
    let client = match api.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    match runtime() {
        Ok(rt) => rt.block_on(f(client)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            EXIT_FAILURE
        }
    }
}

/// `--param KEY=VALUE` flags as a JSON object; a value is parsed as JSON when it can be.
fn parse_params(params: &[String]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut map = serde_json::Map::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            return Err(format!("--param {p:?}: expected KEY=VALUE"));
        };
        let value =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_owned()));
        map.insert(k.to_owned(), value);
    }
    Ok(map)
}

fn validate(path: &std::path::Path, aws: bool) -> u8 {
    match config::load_file(path) {
        Ok(cfg) if aws => {
            let rt = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return EXIT_FAILURE;
                }
            };
            match rt.block_on(crate::daemon::check_aws_wiring(&cfg)) {
                Err(e) => {
                    eprintln!("{}: cannot check against AWS: {e}", path.display());
                    EXIT_FAILURE
                }
                Ok(w) => {
                    for line in &w.checked {
                        println!("checked: {line}");
                    }
                    for line in &w.unreadable {
                        eprintln!("not read: {line}");
                    }
                    for line in &w.problems {
                        eprintln!("not wired: {line}");
                    }
                    if !w.problems.is_empty() {
                        EXIT_INVALID
                    } else if !w.unreadable.is_empty() {
                        EXIT_FAILURE
                    } else {
                        println!("{}: ok — wired in AWS as configured", path.display());
                        EXIT_OK
                    }
                }
            }
        }
        Ok(cfg) => {
            println!(
                "{}: ok — pair {}: {} (hot) / {} (cold); {} probe(s); {} DNS record(s); {} Aurora global cluster(s); {} backup vault(s); Cognito {}; {} Kubernetes cluster(s); policy {}",
                path.display(),
                cfg.pair,
                cfg.hot_region(),
                cfg.cold_region(),
                cfg.health.probes.len(),
                cfg.dns.as_ref().map_or(0, |d| d.records.len()),
                cfg.replication.aurora.len(),
                cfg.replication.backup_vaults.len(),
                if cfg.cognito.is_some() { "on" } else { "off" },
                cfg.gitops.as_ref().map_or(0, |g| g.clusters.len()),
                cfg.policy.mode.as_str(),
            );
            EXIT_OK
        }
        Err(errors) => {
            eprintln!("{errors}");
            EXIT_INVALID
        }
    }
}

fn hash_token_command(args: &HashTokenArgs) -> u8 {
    if args.generate {
        let token = generate_token();
        let role: Role = args.role.into();
        let text = format!(
            "# token (give it to its holder; it is not stored anywhere):\n# {token}\n# entry for the tokens file:\n  - name: {}\n    role: {}\n    sha256: {}\n",
            args.name,
            role.as_str(),
            hash_token(&token)
        );
        return stdout::exit_code(stdout::print(&text), EXIT_OK);
    }
    let mut token = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut token) {
        eprintln!("cannot read the token from stdin: {e}");
        return EXIT_FAILURE;
    }
    let token = token.trim();
    if token.is_empty() {
        eprintln!("no token on stdin (or use --generate)");
        return EXIT_INVALID;
    }
    stdout::exit_code(stdout::print(&format!("{}\n", hash_token(token))), EXIT_OK)
}

fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(args: ServeArgs) -> u8 {
    let ServeArgs {
        config: path,
        listen,
        log_format,
        log_level,
    } = args;
    let config = match config::load_file(&path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return EXIT_INVALID;
        }
    };
    let format = log_format.unwrap_or(config.log.format);
    let filter = log_level
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| config.log.level.clone());
    if let Err(e) = crate::telemetry::init_tracing(format, &filter) {
        eprintln!("{e}");
        return EXIT_INVALID;
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match rt.block_on(crate::daemon::serve(config, listen, shutdown_signal())) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            tracing::error!(error = %e, "failoverd failed");
            eprintln!("failoverd: {e}");
            EXIT_FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The library never installs signal handlers itself.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "signal received"),
        () = terminate => tracing::info!(signal = "SIGTERM", "signal received"),
    }
}

/// Runs one API client command and prints its result.
fn client_command<F, Fut>(api: &ApiArgs, call: F) -> u8
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ClientError>>,
{
    client_command_printing(api, call, print_value)
}

/// [`client_command`] with its own rendering of the result.
fn client_command_printing<F, Fut>(
    api: &ApiArgs,
    call: F,
    render: fn(&serde_json::Value, Output) -> String,
) -> u8
where
    F: FnOnce(ApiClient) -> Fut,
    Fut: std::future::Future<Output = Result<serde_json::Value, ClientError>>,
{
    let client = match api.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match rt.block_on(call(client)) {
        Ok(value) => stdout::exit_code(stdout::print(&render(&value, api.output)), EXIT_OK),
        Err(e) => report_error(&e),
    }
}

fn print_value(value: &serde_json::Value, output: Output) -> String {
    match output {
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
        Output::Text => {
            let mut out = String::new();
            print_text(&mut out, value, 0);
            out
        }
    }
}

/// `GET /v1/plans` as a table: name, what it moves, parameters, description.
fn print_plans(value: &serde_json::Value, output: Output) -> String {
    let Some(plans) = value.get("plans").and_then(|p| p.as_array()) else {
        return print_value(value, output);
    };
    if output == Output::Json {
        return print_value(value, output);
    }
    let rows: Vec<[String; 4]> = plans
        .iter()
        .map(|p| {
            let flag = |k: &str| p.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
            let moves = match (flag("moves_traffic"), flag("moves_writer")) {
                (true, true) => "traffic, writer",
                (true, false) => "traffic",
                (false, true) => "writer",
                (false, false) => "-",
            };
            let params = p
                .get("parameters")
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "-".to_owned());
            let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            [text("name"), moves.to_owned(), params, text("description")]
        })
        .collect();
    let header = ["PLAN", "MOVES", "PARAMETERS", "DESCRIPTION"].map(str::to_owned);
    let width = |i: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let _ = writeln!(
            out,
            "{:w0$}  {:w1$}  {:w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
    }
    out
}

/// A readable indented rendering of a JSON document.
fn print_text(out: &mut String, value: &serde_json::Value, indent: usize) {
    use serde_json::Value;
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}:");
                        print_text(out, v, indent + 1);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}:");
                        for item in a {
                            match item {
                                Value::Object(_) => {
                                    let _ = writeln!(out, "{pad}  -");
                                    print_text(out, item, indent + 2);
                                }
                                other => {
                                    let _ = writeln!(out, "{pad}  - {}", scalar(other));
                                }
                            }
                        }
                    }
                    other => {
                        let _ = writeln!(out, "{pad}{k}: {}", scalar(other));
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other));
        }
    }
}

fn scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::Array(a) if a.is_empty() => "[]".to_owned(),
        serde_json::Value::Object(o) if o.is_empty() => "{}".to_owned(),
        other => other.to_string(),
    }
}
