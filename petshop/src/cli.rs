//! The `petshop` command line (clap): `serve` (default), `seed --pets N [--seed S]`,
//! `openapi [--out PATH]`, and every setting of [`Settings`] as an option or its
//! environment variable.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, ConfigError, Settings};
use crate::service::{db, seed};
use crate::startup::{Application, shutdown_signal};
use crate::{api, telemetry};

const AFTER_HELP: &str = "\
Every setting is an option or its environment variable (the option wins); an empty
variable means the default. `.env.example` lists them all.

Tracing: spans are exported over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set; the other standard OTEL_* variables apply.";

/// The pet shop: a REST service whose reads go through a tiered cache.
#[derive(Parser, Debug)]
#[command(name = "petshop", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The service's settings.
    #[command(flatten)]
    pub settings: Settings,
}

/// What the command line asked for.
#[derive(Subcommand, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Insert N generated pets (deterministic for a given seed).
    Seed {
        /// How many pets.
        #[arg(long)]
        pets: u64,
        /// The random generator's seed.
        #[arg(long, default_value_t = seed::DEFAULT_SEED)]
        seed: u64,
    },
    /// Print the OpenAPI spec (JSON), or write it to PATH (regenerate the committed
    /// one: cargo run -p petshop -- openapi --out openapi/openapi.json).
    Openapi {
        /// Where to write it.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
}

/// Parses `args` (program name first) and the environment. `Err` carries either a
/// bad setting (naming its variable) or clap's own answer (help, version, usage).
pub fn parse<I, T>(args: I) -> Result<Cli, Box<Outcome>>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    Cli::command()
        .try_get_matches_from(args)
        .and_then(|m| Cli::from_arg_matches(&m))
        .map_err(|e| {
            Box::new(match ConfigError::from_clap(&e) {
                Some(bad) => Outcome::Config(bad),
                None => Outcome::Clap(e),
            })
        })
}

/// Why [`parse`] did not give a command.
#[derive(Debug)]
pub enum Outcome {
    /// A setting with a value the service cannot use.
    Config(ConfigError),
    /// Help, version, or a usage error: clap prints it and picks the exit code.
    Clap(clap::Error),
}

/// Runs the command line of this process.
pub async fn run() -> anyhow::Result<()> {
    let cli = match parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(outcome) => match *outcome {
            Outcome::Config(e) => return Err(e.into()),
            Outcome::Clap(e) => e.exit(),
        },
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi { out: None } => println!("{}", api::spec_json()),
        Command::Openapi { out: Some(path) } => {
            std::fs::write(&path, format!("{}\n", api::spec_json()))
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
        Command::Seed { pets, seed: s } => {
            let config = cli.settings.validate()?;
            let telemetry = telemetry::init_with(config.log_json, &config.log_filter);
            let db = db::connect(&config.database_url, |_| {}).await?;
            let start = Instant::now();
            let n = seed::seed(&db, pets, s).await?;
            let secs = start.elapsed().as_secs_f64();
            telemetry.shutdown().await;
            println!(
                "seeded {n} pets in {secs:.2}s (seed {s}); flush the cache of a running service"
            );
        }
        Command::Serve => {
            let config: Config = cli.settings.validate()?;
            let telemetry = telemetry::init_with(config.log_json, &config.log_filter);
            tracing::info!(config = ?config, traces_exported = telemetry.exporting(), "starting");
            let served = async {
                let app = Application::build(&config).await?;
                app.run_until(shutdown_signal()).await?;
                anyhow::Ok(())
            }
            .await;
            tracing::info!("stopped");
            telemetry.shutdown().await;
            served?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &str) -> Result<Option<Command>, String> {
        let args = std::iter::once("petshop").chain(s.split_whitespace());
        parse(args).map(|c| c.command).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn commands_and_options_parse() {
        assert_eq!(cmd("").unwrap(), None);
        assert_eq!(cmd("serve").unwrap(), Some(Command::Serve));
        assert_eq!(
            cmd("openapi").unwrap(),
            Some(Command::Openapi { out: None })
        );
        assert_eq!(
            cmd("openapi --out x.json").unwrap(),
            Some(Command::Openapi {
                out: Some("x.json".into())
            })
        );
        assert!(cmd("openapi --out").is_err());
        assert_eq!(
            cmd("seed --pets 5").unwrap(),
            Some(Command::Seed { pets: 5, seed: 42 })
        );
        assert_eq!(
            cmd("seed --seed 7 --pets 5").unwrap(),
            Some(Command::Seed { pets: 5, seed: 7 })
        );
        assert!(cmd("seed").is_err());
        assert!(cmd("seed --pets many").is_err());
        assert!(cmd("fly").is_err());
    }

    #[test]
    fn a_bad_option_names_its_variable() {
        let Err(outcome) = parse(["petshop", "--pet-ttl", "soon"]) else {
            panic!("a bad TTL must be refused");
        };
        let Outcome::Config(e) = *outcome else {
            panic!("expected a setting error, got {outcome:?}");
        };
        assert_eq!(e.var, "PET_TTL");
        assert!(e.to_string().contains("5s"), "{e}");
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = Cli::command().render_long_help().to_string();
        for var in crate::config::VARIABLES {
            assert!(
                help.contains(&format!("env: {var}")),
                "{var} missing:\n{help}"
            );
        }
        for default in [
            "[default: 5s]",
            "[default: cache-aside]",
            "[default: 64MiB]",
        ] {
            assert!(help.contains(default), "{default} missing:\n{help}");
        }
    }
}
