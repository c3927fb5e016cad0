//! `sse-bench`: runs the benchmark scenarios, prints the table and writes the report.

use clap::Parser;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let settings = sse_bench::Settings::parse();
    let report = sse_bench::run(settings).await?;
    println!("{}", report.markdown());
    Ok(())
}
