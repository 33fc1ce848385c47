//! The Grafana dashboard `config/grafana/failoverd.json`, against the real thing: a real
//! Prometheus ([`Prometheus`]) scrapes the real binary running the lab (`config/lab.yaml` on the
//! seeded emulated AWS and the two emulated clusters), and every query of the dashboard — each
//! panel's targets, the annotations, the template variables — is run through Prometheus's HTTP
//! API with the variables set as Grafana would set them, and must return a sample with a finite
//! value (a query that returns nothing, or only NaN, draws an empty panel). Every query also
//! passes `promtool check rules` (as a recording rule), and the JSON is checked for what Grafana
//! needs to import it: a uid, the schema version, a `${datasource}` variable used by every
//! panel and target, unique ids, and a grid layout without overlaps.
//!
//! A run waits for approval while the first queries are checked (the approval panel needs one),
//! then is approved and finishes (the outcome and step-duration panels need that). When failoverd
//! is stopped, the rules' `FailoverdInstanceDown` and `FailoverdDown` fire in the same Prometheus:
//! the `job="failoverd"` they select is the job that scrapes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::lab_support::{put_lag, Api, LabWorld};
use crate::prometheus_support::{promtool, Prometheus};
use crate::support::harness::Daemon;
use crate::support::{COLD, HOT};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboard() -> Value {
    let path = root().join("config/grafana/failoverd.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
        .expect("the dashboard is JSON")
}

/// One PromQL query of the dashboard: where it is, and its text with Grafana's variables.
struct Query {
    place: String,
    expr: String,
}

/// Every panel target's and annotation's query.
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                place: format!(
                    "panel {:?} target {}",
                    panel["title"].as_str().unwrap_or("?"),
                    target["refId"].as_str().unwrap_or("?")
                ),
                expr: target["expr"].as_str().expect("a target's expr").to_owned(),
            });
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push(Query {
                place: format!(
                    "annotation {:?}",
                    annotation["name"].as_str().unwrap_or("?")
                ),
                expr: expr.to_owned(),
            });
        }
    }
    out
}

/// The values Grafana would put in for the variables: one instance (regex-escaped, as Grafana
/// formats a multi-value variable for `=~`), both regions ("All"), and the time range's
/// intervals.
struct Variables {
    instance: String,
    regions: String,
}

impl Variables {
    fn apply(&self, expr: &str) -> String {
        expr.replace("$instance", &self.instance)
            .replace("$region", &self.regions)
            .replace("$pair", "lab")
            .replace("$__rate_interval", "1m")
            .replace("$__range", "15m")
    }
}

/// The variables a query may use.
const KNOWN_VARIABLES: &[&str] = &[
    "$instance",
    "$region",
    "$pair",
    "$__rate_interval",
    "$__range",
];

/// Whether an instant query's answer has a sample with a finite value; the reason otherwise.
fn has_finite_sample(answer: &Value) -> Result<(), String> {
    if answer["status"] != "success" {
        return Err(format!("refused: {answer}"));
    }
    let result = answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let finite = result.iter().any(|s| {
        s["value"][1]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    });
    if finite {
        Ok(())
    } else {
        Err(format!("no finite sample: {result:?}"))
    }
}

/// Runs every query not yet answered, until `done` holds for the answered set or `within` has
/// passed; returns what is still unanswered with the last answer.
async fn answer_queries(
    prometheus: &Prometheus,
    queries: &[(String, String)],
    answered: &mut BTreeSet<String>,
    within: Duration,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let mut missing = BTreeMap::new();
        for (place, expr) in queries {
            if answered.contains(place) {
                continue;
            }
            match has_finite_sample(&prometheus.query(expr).await) {
                Ok(()) => {
                    answered.insert(place.clone());
                }
                Err(why) => {
                    missing.insert(place.clone(), format!("{expr}\n    {why}"));
                }
            }
        }
        if missing.is_empty() || done(answered) || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[test]
fn every_dashboard_query_returns_data_from_prometheus_scraping_the_lab() {
    let rt = crate::lab_support::runtime();
    let world = LabWorld::start(&rt);
    let bed = &world.bed;
    // A fresh lag datapoint (replication and RPO lag) for the secondary.
    put_lag(&bed.moto.endpoint_url(), COLD, "lab-cold", 800.0, 900.0);
    let config = world.config(
        "  mode: approval_required\n  plan: failover\n  min_unhealthy_for: 10s\n  cooldown: 10m\n  max_data_loss: 1m\n",
    );
    let mut daemon = Daemon::start(&config);
    let target = daemon.url.trim_start_matches("http://").to_owned();
    let prometheus = rt.block_on(Prometheus::start(&target));

    let vars = Variables {
        instance: target.replace('.', "\\\\."),
        regions: format!("{HOT}|{COLD}"),
    };
    let dashboard = dashboard();
    let queries: Vec<(String, String)> = queries(&dashboard)
        .into_iter()
        .map(|q| (q.place, vars.apply(&q.expr)))
        .collect();
    assert!(queries.len() >= 30, "{} queries", queries.len());

    // The template variables list the lab's pair, this instance and both regions.
    let variables: BTreeMap<String, Value> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or_default().to_owned(), v.clone()))
        .collect();
    for (name, wanted) in [
        ("pair", vec!["lab".to_owned()]),
        ("instance", vec![target.clone()]),
        ("region", vec![HOT.to_owned(), COLD.to_owned()]),
    ] {
        let definition = variables[name]["query"]["query"]
            .as_str()
            .unwrap_or_else(|| panic!("variable {name} has no query"));
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|d| d.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name}: {definition} is not label_values(selector, label)"));
        let (selector, label) = inner.rsplit_once(',').expect("selector, label");
        let selector = vars.apply(selector.trim());
        let values = rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let values = prometheus.label_values(&selector, label.trim()).await;
                if wanted.iter().all(|w| values.contains(w)) || Instant::now() > deadline {
                    break values;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        for w in &wanted {
            assert!(
                values.contains(w),
                "variable {name} ({definition}): {w} not in {values:?}"
            );
        }
    }

    // A run waiting at its approval gate.
    let api = Api {
        d: &daemon,
        rt: &rt,
    };
    let run = api.start(json!({
        "plan": "selftest",
        "reason": "dashboard test",
        "params": {"steps": 2, "approval": true},
    }));
    api.wait("the run waits for approval", 60, || {
        (api.get(&format!("/v1/runs/{run}"))["status"] == "waiting_approval").then_some(())
    });
    let waiting = queries
        .iter()
        .find(|(_, e)| e.contains("failoverd_run_waiting_approval"))
        .map(|(p, _)| p.clone())
        .expect("a panel shows the runs waiting for approval");
    let mut answered = BTreeSet::new();
    let missing = rt.block_on(answer_queries(
        &prometheus,
        &queries,
        &mut answered,
        Duration::from_secs(90),
        |answered| answered.contains(&waiting),
    ));
    assert!(
        answered.contains(&waiting),
        "{waiting} had no data while a run waited: {:?}",
        missing.get(&waiting)
    );
    assert_eq!(
        rt.block_on(prometheus.value(&format!(
            "max by (plan) (failoverd_run_waiting_approval{{instance=~\"{}\"}})",
            vars.instance
        ))),
        Some(1.0)
    );

    // Approved, the run finishes; then every query must have data.
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{run}/approve"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(api.finished(&run, 60)["status"], "succeeded");
    let missing = rt.block_on(answer_queries(
        &prometheus,
        &queries,
        &mut answered,
        Duration::from_secs(120),
        |_| false,
    ));
    assert!(
        missing.is_empty(),
        "{} of {} dashboard queries returned no data:\n{}",
        missing.len(),
        queries.len(),
        missing
            .iter()
            .map(|(p, m)| format!("- {p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // What some panels show is what the lab is.
    let value = |q: &str| rt.block_on(prometheus.value(&vars.apply(q)));
    assert_eq!(
        value(&format!(
            "max(failoverd_region_active{{instance=~\"$instance\", region=\"{HOT}\"}})"
        )),
        Some(1.0)
    );
    assert_eq!(
        value("sum(increase(failoverd_runs_total{instance=~\"$instance\", plan=\"selftest\", outcome=\"succeeded\"}[$__range])) > 0.5")
            .map(f64::round),
        Some(1.0),
        "the outcome panel counts the run"
    );
    assert_eq!(
        value(&format!(
            "max(failoverd_cognito_users{{instance=~\"$instance\", region=\"{COLD}\"}})"
        )),
        Some(crate::lab_support::LAB_USERS as f64),
        "the sync copied the lab's users"
    );

    // The binary's metrics, the new ones included, pass `promtool check metrics`.
    let text = api.metrics();
    for name in [
        "failoverd_component_state",
        "failoverd_cognito_sync_interval_seconds",
        "failoverd_leader_lease_duration_seconds",
        "failoverd_region_pair_info",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    let (ok, out) = promtool(&["check", "metrics"], Some(&text));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );

    // failoverd stops: its job has no target up, and the two alerts about it fire.
    let _ = daemon.child.kill();
    let _ = daemon.child.wait();
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(90);
        for alert in ["FailoverdInstanceDown", "FailoverdDown"] {
            loop {
                let states = prometheus.alert_states(alert).await;
                if states.iter().any(|(state, _)| state == "firing") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{alert} did not fire: {states:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        let states = prometheus.alert_states("FailoverdInstanceDown").await;
        assert!(
            states
                .iter()
                .any(|(_, labels)| labels["instance"] == target.as_str()),
            "{states:?}"
        );
    });
}

#[test]
fn every_dashboard_query_parses() {
    let vars = Variables {
        instance: "10\\\\.0\\\\.3\\\\.7:8080|10\\\\.0\\\\.4\\\\.2:8080".into(),
        regions: format!("{HOT}|{COLD}"),
    };
    let queries = queries(&dashboard());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        for word in q
            .expr
            .split(|c: char| !(c == '$' || c == '_' || c.is_alphanumeric()))
        {
            if word.starts_with('$') {
                assert!(
                    KNOWN_VARIABLES.contains(&word),
                    "{}: unknown variable {word}",
                    q.place
                );
            }
        }
        assert!(
            q.expr.contains("instance=~\"$instance\""),
            "{}: every query selects the chosen instances: {}",
            q.place,
            q.expr
        );
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&vars.apply(&q.expr)).expect("a JSON string is a YAML string")
        ));
    }
    let path = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&path, rules).expect("write");
    let (ok, out) = promtool(&["check", "rules", &path.display().to_string()], None);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{out}"
    );
}

/// `(x, y, w, h)` of a panel.
fn grid(panel: &Value) -> (u64, u64, u64, u64) {
    let g = &panel["gridPos"];
    let n = |k: &str| {
        g[k].as_u64()
            .unwrap_or_else(|| panic!("panel {:?}: gridPos.{k}", panel["title"]))
    };
    (n("x"), n("y"), n("w"), n("h"))
}

#[test]
fn dashboard_is_importable_grafana_json() {
    let d = dashboard();
    assert_eq!(d["uid"], "failoverd");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "{}",
        d["schemaVersion"]
    );
    assert!(
        d.get("id").is_none_or(Value::is_null),
        "an exported dashboard has no database id"
    );
    let variables = d["templating"]["list"].as_array().expect("templating.list");
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(datasource["type"], "datasource");
    assert_eq!(datasource["query"], "prometheus");
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(
            v["datasource"]["uid"], "${datasource}",
            "variable {}",
            v["name"]
        );
    }
    let datasource_ref = json!({"type": "prometheus", "uid": "${datasource}"});
    let panels = d["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for panel in panels {
        let title = panel["title"]
            .as_str()
            .expect("every panel has a title")
            .to_owned();
        assert!(
            ids.insert(panel["id"].as_u64().expect("a numeric id")),
            "{title}: id reused"
        );
        let (x, y, w, h) = grid(panel);
        assert!(
            w > 0 && h > 0 && x + w <= 24,
            "{title}: gridPos {x},{y} {w}x{h}"
        );
        for cx in x..x + w {
            for cy in y..y + h {
                if let Some(other) = cells.insert((cx, cy), title.clone()) {
                    panic!("{title} overlaps {other} at {cx},{cy}");
                }
            }
        }
        if panel["type"] == "row" {
            assert!(panel.get("targets").is_none(), "{title}");
            continue;
        }
        assert!(
            panel["description"].as_str().is_some_and(|t| !t.is_empty()),
            "{title}: a description says what the panel shows"
        );
        assert_eq!(panel["datasource"], datasource_ref, "{title}");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}");
        let mut refs = BTreeSet::new();
        for t in targets {
            assert_eq!(t["datasource"], datasource_ref, "{title}");
            assert!(
                refs.insert(t["refId"].as_str().expect("refId")),
                "{title}: refId reused"
            );
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
        }
    }
    // The subjects the operators asked for each have a panel.
    let titles: Vec<String> = panels
        .iter()
        .filter_map(|p| p["title"].as_str().map(str::to_lowercase))
        .collect();
    for subject in [
        "region health",
        "probe states",
        "replication lag vs budget",
        "lag staleness",
        "backup copy age",
        "users and groups",
        "sync writes",
        "throttling",
        "last successful sync",
        "active run",
        "run outcomes",
        "step durations",
        "decisions",
        "readiness",
        "leadership",
        "component states",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(subject)),
            "no panel about {subject}: {titles:?}"
        );
    }
}
