//! Rewrites `benches/results/micro.md` from criterion's last estimates.
//!
//! `cargo run -p benches --bin micro_report [-- <criterion dir> <out.md>]`

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = args
        .next()
        .map_or_else(benches::micro_report::criterion_dir, Into::into);
    let out = args
        .next()
        .map_or_else(benches::micro_report::default_out, Into::into);
    let md = benches::micro_report::write(&dir, &out)?;
    println!("{md}");
    eprintln!("written to {}", out.display());
    Ok(())
}
