//! `docker-compose.yml` is accepted by `docker compose config` when Docker Compose is
//! installed, else by the compose-spec schema (`pip install check-jsonschema`), else the
//! check says loudly that it was skipped; `.env.example` lists every variable; the
//! scale-out profile has its services and health checks.

use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn runs(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let file = format!("{ROOT}/docker-compose.yml");
    assert!(std::path::Path::new(&file).exists(), "{file} is missing");
    let (cmd, args): (&str, Vec<&str>) = if runs("docker", &["compose", "version"]) {
        // With every profile on, every service is checked.
        (
            "docker",
            vec![
                "compose",
                "-f",
                &file,
                "--profile",
                "scale",
                "--profile",
                "observability",
                "config",
                "-q",
            ],
        )
    } else if runs("check-jsonschema", &["--version"]) {
        eprintln!("`docker compose` is not available: validating against the compose-spec schema");
        (
            "check-jsonschema",
            vec!["--builtin-schema", "vendor.compose-spec", &file],
        )
    } else {
        // Straight to stderr: libtest hides a passing test's `eprintln!`.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: neither `docker compose` nor `check-jsonschema` is available; \
             docker-compose.yml was not validated ***\n"
        );
        return;
    };
    let out = Command::new(cmd)
        .args(&args)
        .current_dir(ROOT)
        .output()
        .expect("run the compose check");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The top-level services of a compose file, each with its block of lines (the file's
/// own layout: two-space indents; enough for these checks, no YAML parser needed).
fn services(yaml: &str) -> Vec<(&str, Vec<&str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut inside = false;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            inside = line.trim_end() == "services:";
            continue;
        }
        if !inside {
            continue;
        }
        if let Some(name) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':'))
            && !name.starts_with([' ', '#'])
        {
            out.push((name, Vec::new()));
        } else if let Some((_, block)) = out.last_mut() {
            block.push(line.trim());
        }
    }
    out
}

#[test]
fn the_scale_profile_puts_nginx_in_front_and_every_service_has_a_health_check() {
    let yaml = std::fs::read_to_string(format!("{ROOT}/docker-compose.yml")).unwrap();
    let all = services(&yaml);
    let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "redis",
            "postgres",
            "petshop",
            "nginx",
            "prometheus",
            "grafana"
        ],
        "{yaml}"
    );
    let block = |name: &str| &all.iter().find(|(n, _)| *n == name).unwrap().1;
    let has = |name: &str, prefix: &str| block(name).iter().any(|l| l.starts_with(prefix));

    // Every service is health-checked; the instances on /ready (503 while draining).
    for name in &names {
        assert!(has(name, "healthcheck:"), "{name} has no health check");
    }
    assert!(
        block("petshop")
            .iter()
            .any(|l| l.starts_with("test:") && l.contains("GET /ready ")),
        "petshop's health check must ask /ready"
    );
    // `docker compose up` is what it was: no profile on redis, postgres and petshop.
    for name in ["redis", "postgres", "petshop"] {
        assert!(
            !has(name, "profiles:"),
            "{name} must start without a profile"
        );
    }
    assert!(has("nginx", "profiles: [scale]"));
    // Prometheus and Grafana only on request (petshop/tests/api/dashboard.rs checks
    // what they load).
    for name in ["prometheus", "grafana"] {
        assert!(has(name, "profiles: [observability]"), "{name}'s profile");
    }
    // nginx runs the committed config, and waits for healthy instances.
    let mount = "- ./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro";
    assert!(block("nginx").contains(&mount), "nginx must mount {mount}");
    assert!(std::path::Path::new(&format!("{ROOT}/deploy/nginx/nginx.conf")).exists());
    assert!(
        has("nginx", "image: nginx:1.28"),
        "`resolve` needs nginx 1.27.3+"
    );
    // Replicas cannot share one host port: it is a variable (0 = a free one each).
    assert!(
        block("petshop").contains(&"- \"${PETSHOP_PORT:-8000}:8000\""),
        "petshop's host port must be configurable for --scale"
    );
}

#[test]
fn the_instances_trust_nginx_at_its_fixed_address_and_no_other_container_gets_it() {
    let yaml = std::fs::read_to_string(format!("{ROOT}/docker-compose.yml")).unwrap();
    let all = services(&yaml);
    let block = |name: &str| &all.iter().find(|(n, _)| *n == name).unwrap().1;
    let nginx_ip = block("nginx")
        .iter()
        .find_map(|l| l.strip_prefix("ipv4_address:"))
        .map(str::trim)
        .expect("nginx has a fixed address");
    let trusted = block("petshop")
        .iter()
        .find_map(|l| l.strip_prefix("TRUSTED_PROXIES: ${TRUSTED_PROXIES:-"))
        .and_then(|l| l.strip_suffix('}'))
        .expect("petshop sets TRUSTED_PROXIES");
    assert_eq!(
        trusted, nginx_ip,
        "the instances must trust nginx, and only it"
    );
    // The network's own lines: its subnet holds nginx's address, its dynamic range not.
    let value = |key: &str| {
        yaml.lines()
            .find_map(|l| l.trim().trim_start_matches("- ").strip_prefix(key))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {key} in the compose file"))
    };
    let subnet: petshop::config::Cidr = value("subnet:").parse().unwrap();
    let dynamic: petshop::config::Cidr = value("ip_range:").parse().unwrap();
    let ip: std::net::IpAddr = nginx_ip.parse().unwrap();
    assert!(subnet.contains(ip), "{ip} outside {subnet}");
    assert!(
        !dynamic.contains(ip),
        "{ip} may be given to another container ({dynamic})"
    );
}

#[test]
fn env_example_lists_every_variable_the_service_reads() {
    let example = std::fs::read_to_string(format!("{ROOT}/.env.example")).expect(".env.example");
    // Every variable the settings read, as clap knows them, and the trace switch.
    let mut vars = petshop::config::VARIABLES.to_vec();
    assert!(vars.len() >= 15, "found only {vars:?}");
    vars.push("OTEL_EXPORTER_OTLP_ENDPOINT");
    for var in vars {
        assert!(
            example.contains(&format!("\n{var}=")),
            ".env.example misses {var}"
        );
    }
}
