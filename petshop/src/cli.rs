//! The `petshop` command line: `serve` (default), `seed --pets N [--seed S]`,
//! `openapi [--out PATH]`.

use std::time::Instant;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::service::{db, seed};
use crate::startup::{Application, shutdown_signal};
use crate::{api, telemetry};

const USAGE: &str = "usage: petshop [serve | seed --pets N [--seed S] | openapi [--out PATH]]
  serve      run the HTTP service (default); settings from the environment (.env.example)
  seed       insert N generated pets (deterministic for a given --seed, default 42)
  openapi    print the OpenAPI spec (JSON), or write it to PATH
             (regenerate the committed one: cargo run -p petshop -- openapi --out openapi/openapi.json)";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the service.
    Serve,
    /// Insert generated pets.
    Seed {
        /// How many.
        pets: u64,
        /// The RNG seed.
        seed: u64,
    },
    /// Print the spec, or write it to a file.
    OpenApi {
        /// Where to write it (`None`: stdout).
        out: Option<String>,
    },
    /// Print the usage.
    Help,
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> anyhow::Result<Command> {
    let mut it = args.iter().map(String::as_str);
    let cmd = match it.next() {
        None | Some("serve") => Command::Serve,
        Some("openapi") => match it.next() {
            None => Command::OpenApi { out: None },
            Some("--out") => Command::OpenApi {
                out: Some(it.next().context("--out needs a path")?.to_owned()),
            },
            Some(other) => bail!("unknown option {other}\n{USAGE}"),
        },
        Some("-h" | "--help" | "help") => Command::Help,
        Some("seed") => {
            let (mut pets, mut rng_seed) = (None, seed::DEFAULT_SEED);
            while let Some(flag) = it.next() {
                let value = it.next().with_context(|| format!("{flag} needs a value"))?;
                let n: u64 = value
                    .parse()
                    .with_context(|| format!("{flag} {value:?}: expected a whole number"))?;
                match flag {
                    "--pets" => pets = Some(n),
                    "--seed" => rng_seed = n,
                    _ => bail!("unknown option {flag}\n{USAGE}"),
                }
            }
            Command::Seed {
                pets: pets.context("seed needs --pets N")?,
                seed: rng_seed,
            }
        }
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
    };
    if let Some(extra) = it.next()
        && cmd != Command::Help
    {
        bail!("unexpected argument {extra:?}\n{USAGE}");
    }
    Ok(cmd)
}

/// Runs the command line of this process.
pub async fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args)? {
        Command::Help => println!("{USAGE}"),
        Command::OpenApi { out: None } => println!("{}", api::spec_json()),
        Command::OpenApi { out: Some(path) } => {
            std::fs::write(&path, format!("{}\n", api::spec_json()))
                .with_context(|| format!("cannot write {path}"))?;
            println!("wrote {path}");
        }
        Command::Seed { pets, seed: s } => {
            let config = Config::from_env()?;
            telemetry::init(config.log_json);
            let db = db::connect(&config.database_url, |_| {}).await?;
            let start = Instant::now();
            let n = seed::seed(&db, pets, s).await?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "seeded {n} pets in {secs:.2}s (seed {s}); flush the cache of a running service"
            );
        }
        Command::Serve => {
            let config = Config::from_env()?;
            telemetry::init(config.log_json);
            tracing::info!(config = ?config, "starting");
            let app = Application::build(&config).await?;
            app.run_until(shutdown_signal()).await?;
            tracing::info!("stopped");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_and_options_parse() {
        assert_eq!(parse(&args("")).unwrap(), Command::Serve);
        assert_eq!(
            parse(&args("openapi")).unwrap(),
            Command::OpenApi { out: None }
        );
        assert_eq!(
            parse(&args("openapi --out x.json")).unwrap(),
            Command::OpenApi {
                out: Some("x.json".into())
            }
        );
        assert!(parse(&args("openapi --out")).is_err());
        assert_eq!(
            parse(&args("seed --pets 5")).unwrap(),
            Command::Seed { pets: 5, seed: 42 }
        );
        assert_eq!(
            parse(&args("seed --seed 7 --pets 5")).unwrap(),
            Command::Seed { pets: 5, seed: 7 }
        );
        assert!(parse(&args("seed")).is_err());
        assert!(parse(&args("seed --pets many")).is_err());
        assert!(parse(&args("fly")).is_err());
    }
}
