//! The pet shop service, linked into this crate so that `compare` and the tests run
//! exactly the code `cargo run -p petshop` runs, plus the ceiling route
//! `GET /bench/bare` (see `benches::service`), found beside them in the target
//! directory (`CARGO_BIN_EXE_petshop-server` in tests, a sibling executable otherwise).
//!
//! Same command line and environment as `petshop` (`serve`, `seed --pets N`, ...).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match benches::service::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("petshop-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}
