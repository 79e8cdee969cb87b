//! The processes of a comparison: how to run the pet shop, seeding its database,
//! and running one service per configuration, killed on drop.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use petshop::testing::FreshDatabase;
use tempfile::TempDir;

/// Environment variable naming the petshop binary, when not found beside this one.
pub const PETSHOP_BIN_ENV: &str = "PETSHOP_BIN";
/// `RUST_LOG` of every service unless the caller's environment sets one: the pet shop
/// logs each request at `info`, and a benchmark measures the cache, not the log writer.
pub const SERVICE_LOG_FILTER: &str = "warn";
/// How long a service may take to answer `GET /health`.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (free when asked; the service binds it right after).
///
/// # Panics
/// When no port can be bound.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Set (to any value) in the environment of the `compare` executable to make it run the
/// pet shop instead: `compare` links `petshop`, so by default it launches *itself* as the
/// service and can never pick up a stale binary.
pub const AS_PETSHOP_ENV: &str = "BENCHES_AS_PETSHOP";

/// How to run the pet shop: an executable and the environment that makes it one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PetshopCommand {
    /// The executable.
    pub bin: PathBuf,
    /// Environment added to every run of it.
    pub env: Vec<(String, String)>,
}

impl PetshopCommand {
    /// A pet shop executable (`petshop`, or this crate's `petshop-server`).
    #[must_use]
    pub fn executable(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            env: Vec::new(),
        }
    }

    /// The current executable, run with [`AS_PETSHOP_ENV`] set (see `src/bin/compare.rs`).
    pub fn current_exe() -> Result<Self> {
        Ok(Self {
            bin: std::env::current_exe().context("current executable")?,
            env: vec![(AS_PETSHOP_ENV.to_owned(), "1".to_owned())],
        })
    }

    /// `explicit` (`--petshop`), else `$PETSHOP_BIN`, else [`Self::current_exe`].
    pub fn find(explicit: Option<&Path>) -> Result<Self> {
        let bin = explicit
            .map(Path::to_owned)
            .or_else(|| std::env::var_os(PETSHOP_BIN_ENV).map(PathBuf::from));
        match bin {
            Some(p) if p.is_file() => Ok(Self::executable(p)),
            Some(p) => bail!("pet shop executable {} is not a file", p.display()),
            None => Self::current_exe(),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// The database of a comparison.
#[derive(Debug)]
pub enum Database {
    /// A SQLite file in a temporary directory, removed on drop.
    Sqlite {
        /// The directory holding the file.
        dir: TempDir,
        /// `sqlite://…?mode=rwc`.
        url: String,
    },
    /// A PostgreSQL database given by the caller.
    Postgres {
        /// `postgres://…`.
        url: String,
    },
    /// A PostgreSQL database created for one scenario on the caller's server, dropped
    /// on drop.
    FreshPostgres(FreshDatabase),
}

impl Database {
    /// A fresh SQLite file.
    pub fn sqlite() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("petshop-bench").tempdir()?;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("petshop.db").display()
        );
        Ok(Self::Sqlite { dir, url })
    }

    /// A database of its own for a scenario that seeds its own pets: a fresh SQLite
    /// file, or, given the comparison's PostgreSQL URL, a fresh database (named from
    /// `prefix`) on that server, which the URL's user must be allowed to create.
    ///
    /// # Errors
    /// When the file or the database cannot be created.
    pub async fn own(postgres: Option<&str>, prefix: &str) -> Result<Self> {
        match postgres {
            None => Self::sqlite(),
            Some(url) => Ok(Self::FreshPostgres(
                FreshDatabase::create(url, prefix)
                    .await
                    .with_context(|| format!("create a database for {prefix} beside {url}"))?,
            )),
        }
    }

    /// The `DATABASE_URL`.
    #[must_use]
    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } | Self::Postgres { url } => url,
            Self::FreshPostgres(db) => db.url(),
        }
    }

    /// `sqlite` or `postgres`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } | Self::FreshPostgres(_) => "postgres",
        }
    }

    /// How the report names it in a scenario's note.
    #[must_use]
    pub fn described(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "a SQLite file of its own",
            Self::Postgres { .. } => "the comparison's PostgreSQL database",
            Self::FreshPostgres(_) => "a PostgreSQL database of its own",
        }
    }

    /// Where service logs go: the SQLite directory, else the system temp dir.
    #[must_use]
    pub fn log_dir(&self) -> PathBuf {
        match self {
            Self::Sqlite { dir, .. } => dir.path().to_owned(),
            Self::Postgres { .. } | Self::FreshPostgres(_) => std::env::temp_dir(),
        }
    }
}

/// Runs `petshop seed --pets N` against `database_url`.
pub fn seed(petshop: &PetshopCommand, database_url: &str, pets: u64, log_dir: &Path) -> Result<()> {
    let log = log_dir.join("seed.log");
    let out = petshop
        .command()
        .args(["seed", "--pets", &pets.to_string()])
        .env("DATABASE_URL", database_url)
        .stdin(Stdio::null())
        .stdout(File::create(&log)?)
        .stderr(File::create(log_dir.join("seed.err.log"))?)
        .status()
        .with_context(|| format!("run {}", petshop.bin.display()))?;
    if !out.success() {
        let err = std::fs::read_to_string(log_dir.join("seed.err.log")).unwrap_or_default();
        bail!("petshop seed --pets {pets} failed ({out}): {}", tail(&err));
    }
    Ok(())
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2_000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

/// A running service; killed on drop.
#[derive(Debug)]
pub struct Service {
    child: Child,
    addr: SocketAddr,
    err_log: PathBuf,
}

impl Service {
    /// Starts the pet shop serving on a free port with `env` (plus `BIND`), logs in
    /// `log_dir`.
    pub fn start(
        petshop: &PetshopCommand,
        env: &[(String, String)],
        log_dir: &Path,
        name: &str,
    ) -> Result<Self> {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let err_log = log_dir.join(format!("{name}.log"));
        let child = petshop
            .command()
            .env("RUST_LOG", SERVICE_LOG_FILTER)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("BIND", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err_log)?)
            .spawn()
            .with_context(|| format!("start {}", petshop.bin.display()))?;
        Ok(Self {
            child,
            addr,
            err_log,
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for `GET /health`; on failure the error carries the service's log tail.
    pub async fn wait_healthy(&mut self) -> Result<()> {
        let ready = crate::http::wait_ready(self.addr, "/health", START_TIMEOUT);
        let exited = async {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let outcome = tokio::select! {
            r = ready => r,
            status = exited => Err(anyhow::anyhow!("petshop exited early ({status})")),
        };
        outcome.map_err(|e| {
            let log = std::fs::read_to_string(&self.err_log).unwrap_or_default();
            e.context(format!("service log tail:\n{}", tail(&log)))
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
