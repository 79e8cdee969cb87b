//! Where people look: the observability profile's alert rules (`deploy/prometheus/`) and
//! Grafana dashboard (`deploy/grafana/`), checked without Docker.
//!
//! * promtool (Debian's `prometheus` package) checks the rules, runs their unit tests
//!   (`alerts_test.yml`: each alert fires on a bad series, stays quiet on a healthy one),
//!   checks `prometheus.yml`, and parses every dashboard expression as PromQL. Without
//!   promtool these tests say so on stderr and pass, unless `PETSHOP_PROMTOOL_TESTS=required`
//!   (as `.ci/run` sets it): then they fail.
//! * The dashboard is Grafana JSON whose every panel queries the provisioned Prometheus,
//!   and every metric named by its expressions or by the alerts is in a live scrape of the
//!   service's `GET /metrics`: a renamed family breaks this test, not a panel nobody
//!   looks at until the night it is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Seek as _, Write as _};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{bounded, spawn_with};
use crate::server::Binary;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");
const COMPOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.yml");
const REQUIRED_VAR: &str = "PETSHOP_PROMTOOL_TESTS";
/// One promtool run; each takes well under a second here.
const PROMTOOL_BOUND: Duration = Duration::from_secs(30);
/// Where the service's families begin: its own, and the OpenTelemetry-named HTTP and
/// database histograms. Label names (`http_route`...) begin otherwise.
const PREFIXES: [&str; 3] = ["petshop_", "http_server_", "db_client_"];
/// The suffixes of a histogram's samples.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];
/// The families added for the observability issue: the dashboard shows each of them.
const CACHE_OBSERVABILITY_FAMILIES: [&str; 10] = [
    "petshop_cache_operation_duration_seconds",
    "petshop_cache_backplane_lag_seconds",
    "petshop_cache_backplane_lag_max_seconds",
    "petshop_cache_stale_served_age_seconds",
    "petshop_cache_stale_bound_seconds",
    "petshop_cache_probe_checked_total",
    "petshop_cache_probe_stale_total",
    "petshop_cache_probe_shed_total",
    "petshop_cache_probe_behind_seconds",
    "petshop_cache_probe_sample_ratio",
];

fn file(path: &str) -> String {
    std::fs::read_to_string(format!("{DEPLOY}/{path}"))
        .unwrap_or_else(|e| panic!("deploy/{path}: {e}"))
}

/// Whether promtool can run; when it cannot, says so loudly, or fails when required.
fn promtool_here() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| dir.join("promtool").is_file()) {
        return true;
    }
    let reason = "promtool is not on PATH (apt-get install prometheus)";
    if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "required") {
        panic!("{reason}, and {REQUIRED_VAR}=required");
    }
    // Straight to stderr: libtest hides a passing test's `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {reason}; deploy/prometheus was not checked \
         (set {REQUIRED_VAR}=required to fail instead) ***\n"
    );
    false
}

/// Runs `promtool args`, at most [`PROMTOOL_BOUND`]: whether it succeeded, and what it
/// printed (stdout and stderr, interleaved).
fn promtool(args: &[&str]) -> (bool, String) {
    let mut log = tempfile::tempfile().expect("a temporary file");
    let mut child = Binary(
        Command::new("promtool")
            .args(args)
            .stdout(log.try_clone().expect("the log file"))
            .stderr(log.try_clone().expect("the log file"))
            .spawn()
            .expect("start promtool"),
    );
    let deadline = Instant::now() + PROMTOOL_BOUND;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for promtool") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "promtool {args:?} ran longer than {PROMTOOL_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    log.rewind().expect("rewind the log");
    log.read_to_string(&mut out)
        .expect("read promtool's output");
    (status.success(), out)
}

#[test]
fn promtool_accepts_the_alert_rules() {
    if !promtool_here() {
        return;
    }
    let rules = format!("{DEPLOY}/prometheus/alerts.yml");

    let (ok, out) = promtool(&["check", "rules", &rules]);

    assert!(ok, "promtool check rules:\n{out}");
    let alerts = file("prometheus/alerts.yml").matches("- alert: ").count();
    assert!(
        out.contains(&format!("SUCCESS: {alerts} rules found")),
        "{out}"
    );
}

#[test]
fn every_alert_fires_on_a_bad_series_and_stays_quiet_on_a_healthy_one() {
    if !promtool_here() {
        return;
    }
    let tests = format!("{DEPLOY}/prometheus/alerts_test.yml");

    let (ok, out) = promtool(&["test", "rules", &tests]);

    assert!(ok, "promtool test rules:\n{out}");
    // And the unit tests cover every alert, each firing at least once.
    let rules = file("prometheus/alerts.yml");
    let test_file = file("prometheus/alerts_test.yml");
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        let firing = test_file
            .split(&format!("alertname: {alert}\n"))
            .skip(1)
            .any(|after| after.trim_start().starts_with("exp_alerts:\n"));
        assert!(firing, "no test of alerts_test.yml expects {alert} to fire");
    }
}

#[test]
fn promtool_accepts_the_prometheus_config_and_the_rules_it_loads() {
    if !promtool_here() {
        return;
    }
    let config = format!("{DEPLOY}/prometheus/prometheus.yml");

    let (ok, out) = promtool(&["check", "config", &config]);

    assert!(ok, "promtool check config:\n{out}");
    assert!(out.contains("SUCCESS: 1 rule files found"), "{out}");
    // It scrapes the service as the compose file names and binds it.
    let yaml = file("prometheus/prometheus.yml");
    for needed in ["names: [petshop]", "port: 8000", "metrics_path: /metrics"] {
        assert!(yaml.contains(needed), "`{needed}` missing: {yaml}");
    }
    let compose = std::fs::read_to_string(COMPOSE).unwrap();
    assert!(
        compose.contains("BIND: 0.0.0.0:8000"),
        "the service's port moved"
    );
    assert!(compose.contains("- ./deploy/prometheus:/etc/prometheus:ro"));
}

#[test]
fn every_dashboard_expression_is_valid_promql() {
    if !promtool_here() {
        return;
    }
    // Arrange: each expression as a recording rule, Grafana's variables given values.
    let dashboard = dashboard();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (panel, expr)) in dashboard_exprs(&dashboard).iter().enumerate() {
        let expr = grafana_variables_replaced(&dashboard, expr);
        assert!(!expr.contains('$'), "{panel}: a variable left in {expr}");
        // A JSON string is a YAML double-quoted scalar.
        let quoted = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:expr_{i}\n        expr: {quoted}\n"
        ));
    }
    let mut tmp = tempfile::NamedTempFile::new().unwrap();
    tmp.write_all(rules.as_bytes()).unwrap();
    let path = tmp.path().to_str().unwrap().to_owned();

    // Act
    let (ok, out) = promtool(&["check", "rules", &path]);

    // Assert
    assert!(ok, "a dashboard expression is not PromQL:\n{out}\n{rules}");
}

/// The committed dashboard.
fn dashboard() -> Value {
    serde_json::from_str(&file("grafana/dashboards/petshop-cache.json"))
        .expect("the dashboard is JSON")
}

/// Every panel, those nested in collapsed rows too.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// Every PromQL expression of the dashboard, with where it is: each panel's targets and
/// each query variable's query.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((format!("panel {title:?}"), expr.to_owned()));
            }
        }
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = v["name"].as_str().unwrap_or("?");
        let query = v["query"]["query"].as_str().or(v["query"].as_str());
        if let (Some("query"), Some(q)) = (v["type"].as_str(), query) {
            // label_values(metric, label) is Grafana's, not PromQL: its metric is.
            let q = q
                .strip_prefix("label_values(")
                .and_then(|r| r.rsplit_once(','))
                .map_or(q, |(m, _)| m);
            out.push((format!("variable ${name}"), q.to_owned()));
        }
    }
    out
}

/// `expr` with Grafana's interval macros and the dashboard's variables given values.
fn grafana_variables_replaced(dashboard: &Value, expr: &str) -> String {
    let mut expr = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h");
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = v["name"].as_str().expect("a variable's name");
        expr = expr.replace(&format!("${{{name}}}"), ".*");
        expr = expr.replace(&format!("${name}"), ".*");
    }
    expr
}

#[test]
fn the_dashboard_is_grafana_json_whose_every_panel_queries_the_provisioned_prometheus() {
    let d = dashboard();
    assert_eq!(d["uid"], "petshop-cache");
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");

    let mut ids = BTreeSet::new();
    let panels = panels(&d);
    assert!(panels.len() >= 10, "only {} panels", panels.len());
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(ids.insert(p["id"].as_u64().expect("an id")), "{title}: id");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        // Rows only group panels: they query nothing.
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "prometheus", "{title}");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        let targets = targets.unwrap_or_else(|| panic!("{title} has no targets"));
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title}: a target without expr");
            assert_eq!(t["datasource"]["uid"], "prometheus", "{title}: {expr}");
        }
    }

    // The new families each have a panel.
    let named: BTreeSet<String> = dashboard_exprs(&d)
        .iter()
        .flat_map(|(_, e)| metric_names(e))
        .map(|n| family_of(&n).to_owned())
        .collect();
    for family in CACHE_OBSERVABILITY_FAMILIES {
        assert!(named.contains(family), "no panel shows {family}");
    }

    // Grafana is wired to it: the data source's uid, the provider's path, the mounts.
    let datasource = file("grafana/provisioning/datasources/prometheus.yml");
    assert!(datasource.contains("uid: prometheus"), "{datasource}");
    assert!(datasource.contains("url: http://prometheus:9090"));
    let provider = file("grafana/provisioning/dashboards/dashboards.yml");
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));
    let compose = std::fs::read_to_string(COMPOSE).unwrap();
    for mount in [
        "- ./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro",
        "- ./deploy/grafana/provisioning/datasources:/etc/grafana/provisioning/datasources:ro",
        "- ./deploy/grafana/provisioning/dashboards:/etc/grafana/provisioning/dashboards:ro",
    ] {
        assert!(
            compose.contains(mount),
            "docker-compose.yml must mount {mount}"
        );
    }
}

/// The `expr` of every alert of a Prometheus rule file, inline or a block scalar (`|`).
fn alert_exprs(yaml: &str) -> Vec<(String, String)> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut alert = String::from("?");
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix("- alert: ") {
            alert = name.to_owned();
        }
        let Some(rest) = trimmed.strip_prefix("expr:").map(str::trim) else {
            continue;
        };
        let expr = if rest.starts_with(['|', '>']) {
            let mut block = String::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line))
            {
                block.push_str(lines[i].trim());
                block.push('\n');
                i += 1;
            }
            block
        } else {
            rest.to_owned()
        };
        out.push((format!("alert {alert}"), expr));
    }
    out
}

/// The metric names in a PromQL expression: identifiers with one of [`PREFIXES`],
/// outside quoted strings (label values).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut quote: Option<char> = None;
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if PREFIXES.iter().any(|p| word.starts_with(p)) {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
        }
    }
    names
}

/// The family a sample name belongs to, as far as its name tells: without a
/// histogram's suffix.
fn family_of(name: &str) -> &str {
    HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// A scrape's families and their types (`# TYPE name type`).
fn families(scrape: &str) -> BTreeMap<&str, &str> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect()
}

/// Whether a query of `name` finds samples in a scrape of `families`: a counter's or
/// gauge's own name, a histogram's (or summary's) name with its suffix.
fn exported(name: &str, families: &BTreeMap<&str, &str>) -> bool {
    let whole = |t: &str| t != "histogram" && t != "summary";
    if families.get(name).is_some_and(|t| whole(t)) {
        return true;
    }
    HISTOGRAM_SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .and_then(|base| families.get(base))
            .is_some_and(|t| *t == "histogram" || (*t == "summary" && *suffix != "_bucket"))
    })
}

/// The families `named` refers to that `scrape` does not export, each with where it is
/// named.
fn missing(named: &[(String, String)], scrape: &str) -> BTreeMap<String, BTreeSet<String>> {
    let families = families(scrape);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (place, expr) in named {
        for name in metric_names(expr) {
            if !exported(&name, &families) {
                out.entry(family_of(&name).to_owned())
                    .or_default()
                    .insert(place.clone());
            }
        }
    }
    out
}

/// Every expression the dashboard and the alerts evaluate.
fn every_expr() -> Vec<(String, String)> {
    let mut all = dashboard_exprs(&dashboard());
    let rules = file("prometheus/alerts.yml");
    let alerts = alert_exprs(&rules);
    assert_eq!(
        alerts.len(),
        rules.matches("- alert: ").count(),
        "an alert's expr was not found: {alerts:?}"
    );
    all.extend(alerts);
    all
}

#[tokio::test]
#[ignore = "fails until the pet shop exports the new cache families (issue 21, next slice): run with --ignored"]
async fn every_metric_the_dashboard_and_the_alerts_name_is_in_a_live_scrape() {
    bounded(async {
        // Arrange: an instance with Redis (the breaker, round trips and backplane are
        // exported only with it) that has answered a request (HTTP series exist then).
        let app = spawn_with("cache-aside", "l1+l2").await;
        let id = app.insert("Rex", "dog", 3, 50).await;
        for _ in 0..2 {
            assert_eq!(app.get(&format!("/pets/{id}")).await.status, 200);
        }
        let named = every_expr();
        assert!(named.len() >= 20, "only {} expressions", named.len());

        // Act
        let scrape = app.get("/metrics").await;

        // Assert: the check sees a made-up name, and finds every real one.
        assert_eq!(scrape.status, 200);
        let made_up = [("made up".into(), "petshop_cache_nonexistent_total".into())];
        assert_eq!(
            missing(&made_up, &scrape.text)
                .into_keys()
                .collect::<Vec<_>>(),
            ["petshop_cache_nonexistent_total"]
        );
        let absent = missing(&named, &scrape.text);
        let report: Vec<String> = absent
            .iter()
            .map(|(family, places)| format!("  {family}  ({})", join(places)))
            .collect();
        assert!(
            absent.is_empty(),
            "{} families named by the dashboard or the alerts are not in GET /metrics:\n{}",
            absent.len(),
            report.join("\n")
        );
    })
    .await;
}

fn join(places: &BTreeSet<String>) -> String {
    places
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn the_name_check_reports_made_up_and_misused_names_and_passes_real_ones() {
    let scrape = "# HELP petshop_cache_hits_total Reads answered by the tier.\n\
                  # TYPE petshop_cache_hits_total counter\n\
                  petshop_cache_hits_total{tier=\"l1\"} 2\n\
                  # TYPE http_server_request_duration_seconds histogram\n\
                  http_server_request_duration_seconds_bucket{le=\"+Inf\"} 1\n\
                  http_server_request_duration_seconds_count 1\n";
    let expr = |e: &str| vec![("test".to_owned(), e.to_owned())];
    let missing_of = |e: &str| missing(&expr(e), scrape).into_keys().collect::<Vec<_>>();

    // Real names, a histogram through its suffixes; label names and values ignored.
    assert!(missing_of(
        r#"sum by (http_route) (rate(http_server_request_duration_seconds_count{http_route="/pets"}[5m]))
           / rate(petshop_cache_hits_total{tier="petshop_cache_other_total"}[5m])"#
    )
    .is_empty());
    // A made-up family, named by its family even when queried through a suffix.
    assert_eq!(
        missing_of("rate(petshop_cache_nonexistent_total[5m])"),
        ["petshop_cache_nonexistent_total"]
    );
    assert_eq!(
        missing_of("histogram_quantile(0.99, rate(petshop_cache_nonexistent_seconds_bucket[5m]))"),
        ["petshop_cache_nonexistent_seconds"]
    );
    // A histogram queried as if it were a gauge, a counter as if it were a histogram.
    assert_eq!(
        missing_of("max(http_server_request_duration_seconds)"),
        ["http_server_request_duration_seconds"]
    );
    assert_eq!(
        missing_of("petshop_cache_hits_total_bucket"),
        ["petshop_cache_hits_total"]
    );
}

#[test]
fn alert_expressions_are_read_inline_and_from_block_scalars() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        \
                for: 1m\n      - alert: B\n        expr: |\n          petshop_a > 0\n          \
                and\n          petshop_b == 0\n        for: 5m\n";

    let exprs = alert_exprs(yaml);

    assert_eq!(
        exprs,
        [
            ("alert A".to_owned(), "up == 0".to_owned()),
            (
                "alert B".to_owned(),
                "petshop_a > 0\nand\npetshop_b == 0\n".to_owned()
            ),
        ]
    );
}
