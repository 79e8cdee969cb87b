//! Browser tests: the page at `/` and Swagger UI at `/docs`, driven in Debian's headless
//! Chromium by the Playwright scripts in `ui-tests/`, each against its own pet shop on
//! 127.0.0.1 (port 0, in-memory SQLite, L1 only). Screenshots land in the workspace's
//! `target/ui-screenshots/`.
//!
//! They need `node` (20 or newer), `ui-tests/node_modules` (`npm ci` in `ui-tests/`) and
//! `/usr/bin/chromium`. Without them a test says so on stderr and passes, unless
//! `PETSHOP_UI_TESTS=required` (as `.ci/run` sets it): then it fails.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use petshop::config::Config;
use petshop::startup::{Application, Shutdown};

/// A script's whole run, browser start included; the scripts bound themselves at 90 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const CHROMIUM: &str = "/usr/bin/chromium";
const REQUIRED_VAR: &str = "PETSHOP_UI_TESTS";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("petshop sits in the workspace")
        .to_path_buf()
}

fn screenshots() -> PathBuf {
    workspace().join("target").join("ui-screenshots")
}

/// What is missing to run the browser tests, if anything.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    let major = node
        .as_ref()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            let v = String::from_utf8_lossy(&o.stdout);
            v.trim()
                .strip_prefix('v')?
                .split('.')
                .next()?
                .parse::<u32>()
                .ok()
        });
    match major {
        None => return Some("`node` is not on PATH".into()),
        Some(m) if m < 20 => return Some(format!("node {m} is too old (20 or newer)")),
        Some(_) => {}
    }
    let playwright = workspace().join("ui-tests/node_modules/playwright-core");
    if !playwright.is_dir() {
        return Some(format!(
            "{} is missing (run `npm ci` in ui-tests/)",
            playwright.display()
        ));
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    None
}

/// True when the test can run; otherwise says why, loudly, or fails when required.
fn can_run(test: &str) -> bool {
    let Some(reason) = missing() else {
        return true;
    };
    if std::env::var(REQUIRED_VAR).is_ok_and(|v| v == "required") {
        panic!("{test}: {reason}, and {REQUIRED_VAR}=required");
    }
    // Straight to the process's stderr: the test harness captures `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {test}: {reason} (set {REQUIRED_VAR}=required to fail instead) ***\n"
    );
    false
}

/// A script's exit and output.
struct Outcome {
    status: Option<ExitStatus>,
    output: String,
    elapsed: Duration,
}

/// Runs `node ui-tests/<script> <base>`, killing it after [`SCRIPT_TIMEOUT`].
fn node(script: &str, base: &str) -> Outcome {
    let started = Instant::now();
    // The browser profile goes under here, removed even when the script was killed.
    let tmp = std::env::temp_dir().join(format!(
        "petshop-ui-test-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&tmp).expect("a temporary directory");
    let mut child = Command::new("node")
        .arg(workspace().join("ui-tests").join(script))
        .arg(base)
        .current_dir(workspace().join("ui-tests"))
        .env("CHROMIUM", CHROMIUM)
        .env("UI_SCREENSHOTS", screenshots())
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    // Drain both pipes as the script writes, so it never blocks on a full one.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            // Chromium goes with it: it exits when its pipe to node closes.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_dir_all(&tmp);
    let output = format!(
        "--- stdout\n{}--- stderr\n{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    Outcome {
        status,
        output,
        elapsed: started.elapsed(),
    }
}

/// Starts a fresh pet shop on 127.0.0.1, runs `script` against it, stops it; fails
/// with the script's output unless it exited 0 and saved the screenshots `shots`.
async fn browse(script: &str, shots: &[&str]) {
    for shot in shots {
        let _ = std::fs::remove_file(screenshots().join(shot));
    }
    let vars = [
        ("BIND", "127.0.0.1:0"),
        ("DATABASE_URL", "sqlite::memory:"),
        ("CACHE_TIERS", "l1"),
    ];
    let config = Config::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .expect("valid configuration");
    let app = Application::build(&config)
        .await
        .expect("the pet shop starts");
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
        Shutdown::Interrupt
    }));

    let script_name = script.to_owned();
    let outcome = tokio::task::spawn_blocking(move || node(&script_name, &base))
        .await
        .expect("the script runner");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("the server stops")
        .expect("no panic")
        .expect("clean shutdown");
    println!(
        "{script}: {:.1} s\n{}",
        outcome.elapsed.as_secs_f64(),
        outcome.output
    );
    match outcome.status {
        Some(s) if s.success() => {}
        Some(s) => panic!("{script} failed ({s}):\n{}", outcome.output),
        None => panic!(
            "{script} took over {SCRIPT_TIMEOUT:?} and was killed:\n{}",
            outcome.output
        ),
    }
    for shot in shots {
        assert!(screenshots().join(shot).is_file(), "no screenshot {shot}");
    }
}

#[tokio::test]
async fn the_page_creates_and_edits_a_pet_and_its_panel_shows_an_l1_hit() {
    if !can_run("the page") {
        return;
    }
    browse("page.mjs", &["page.png", "page-edit.png"]).await;
}

#[tokio::test]
async fn swagger_ui_creates_and_lists_pets_with_try_it_out() {
    if !can_run("Swagger UI") {
        return;
    }
    browse("docs.mjs", &["docs-post.png", "docs-get.png"]).await;
}
