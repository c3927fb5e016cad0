//! `sse-bench`: runs the benchmark scenarios, prints the table and writes the report.

use clap::Parser;

/// The exit code of a bad setting (sysexits' EX_USAGE), as for the services.
const EXIT_CONFIG: i32 = 64;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let settings = match sse_bench::Settings::try_parse() {
        Ok(s) => s,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            std::process::exit(EXIT_CONFIG);
        }
        // --help and --version.
        Err(e) => e.exit(),
    };
    let report = match sse_bench::run(settings).await {
        Ok(r) => r,
        Err(e)
            if e.downcast_ref::<sse_bench::noise::NoiseError>()
                .is_some_and(sse_bench::noise::NoiseError::is_config) =>
        {
            eprintln!("sse-bench: {e}");
            std::process::exit(EXIT_CONFIG);
        }
        Err(e) => return Err(e),
    };
    println!("{}", report.markdown());
    Ok(())
}
