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
        eprintln!(
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
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "CACHE_TIERS",
        "CACHE_STRATEGY",
        "CACHE_LEASE",
        "PETS_LIST_TTL",
        "PET_TTL",
        "STATS_TTL",
        "L1_MAX_BYTES",
        "REDIS_OP_TIMEOUT",
        "CACHE_JITTER_PERCENT",
        "BIND",
        "ADMIN_TOKEN",
        "LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(
            example.contains(&format!("{var}=")),
            ".env.example misses {var}"
        );
    }
}
