//! `docker-compose.yml` is accepted by `docker compose config` when Docker Compose is
//! installed, else by the compose-spec schema (`pip install check-jsonschema`), else the
//! check says loudly that it was skipped; `.env.example` lists every variable.

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
        ("docker", vec!["compose", "-f", &file, "config", "-q"])
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
