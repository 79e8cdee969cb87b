//! The `petshop` binary: see [`petshop::cli`].

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match petshop::cli::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("petshop: {e:#}");
            ExitCode::FAILURE
        }
    }
}
