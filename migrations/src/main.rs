//! `migrations up|down|status`: runs the pet shop's migrations against `DATABASE_URL`
//! (default: the service's SQLite file, `sqlite://petshop.sqlite?mode=rwc`).

use std::process::ExitCode;

use migrations::{DEFAULT_DATABASE_URL, Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::Database;

const USAGE: &str = "usage: migrations <up|down|status>\n  \
    up      apply every pending migration\n  \
    down    roll back the last applied migration\n  \
    status  list migrations and whether each is applied\n\
    DATABASE_URL selects the database (default sqlite://petshop.sqlite?mode=rwc)";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.as_slice() {
        [c] if ["up", "down", "status"].contains(&c.as_str()) => c.clone(),
        [h] if h == "-h" || h == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    match run(&command, &url).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrations {command} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: &str, url: &str) -> Result<(), sea_orm_migration::DbErr> {
    let db = Database::connect(url).await?;
    match command {
        "up" => {
            Migrator::up(&db, None).await?;
            println!("all migrations applied");
        }
        "down" => {
            Migrator::down(&db, Some(1)).await?;
            println!("last migration rolled back");
        }
        _ => {
            for m in Migrator::get_migration_with_status(&db).await? {
                println!("{:<40} {}", m.name(), m.status());
            }
        }
    }
    Ok(())
}
