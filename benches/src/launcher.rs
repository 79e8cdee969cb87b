//! Who seeds the database and starts services for a comparison: the [`Launcher`]
//! trait, and [`ProcessLauncher`], which runs the real pet shop as child processes.
//! Tests pass a launcher that serves in-process.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Result;
use futures::future::BoxFuture;

use crate::process::{self, PetshopCommand, Service};

/// A running service and whatever keeps it alive.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process, when it has one of its own (for its resident memory).
    pub pid: Option<u32>,
    /// Dropped to stop it.
    pub guard: Box<dyn Send>,
}

/// Seeds a database and starts services.
pub trait Launcher: Send + Sync {
    /// Fills the database at `database_url` with `pets` pets.
    fn seed(&self, database_url: &str, pets: u64, log_dir: &Path) -> Result<()>;

    /// Starts a service with `env` (`DATABASE_URL`, `REDIS_URL`, `CACHE_TIERS`, ...) and
    /// returns once it answers `GET /health`.
    fn start<'a>(
        &'a self,
        env: &'a [(String, String)],
        log_dir: &'a Path,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Running>>;
}

/// Runs the pet shop as child processes.
#[derive(Clone, Debug)]
pub struct ProcessLauncher {
    /// How to run it.
    pub petshop: PetshopCommand,
}

impl Launcher for ProcessLauncher {
    fn seed(&self, database_url: &str, pets: u64, log_dir: &Path) -> Result<()> {
        process::seed(&self.petshop, database_url, pets, log_dir)
    }

    fn start<'a>(
        &'a self,
        env: &'a [(String, String)],
        log_dir: &'a Path,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Running>> {
        Box::pin(async move {
            let mut service = Service::start(&self.petshop, env, log_dir, name)?;
            service.wait_healthy().await?;
            Ok(Running {
                addr: service.addr(),
                pid: Some(service.pid()),
                guard: Box::new(service),
            })
        })
    }
}
