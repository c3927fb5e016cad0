//! `ssectl`: the command line of sse-connector. It parses its arguments (bad usage exits 64,
//! like the services' configuration errors), then calls the services over gRPC; a refusal by a
//! server is printed as the server's message and exits 1, as does a read that some address did
//! not answer (after printing what the others answered).

mod cli;
mod clients;
mod dest;
mod output;
mod resources;
mod run;
mod schemas;
mod tail;
mod watch;

use std::process::ExitCode;

use clap::Parser;

/// Exit code of bad usage (EX_USAGE), as the services use for configuration errors.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            // Printing help or a usage error can only fail on a closed stdout/stderr.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `ssectl tail | head`: the reader has all it wanted.
        Err(e) if e.chain().any(|c| c.is::<output::StdoutClosed>()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Prints the command's error on stderr: one `error:` line, or one per address a read could not
/// get an answer from.
fn report(e: &anyhow::Error) {
    match e.downcast_ref::<clients::Unanswered>() {
        Some(clients::Unanswered(each)) => {
            for e in each {
                eprintln!("error: {}", sse_runtime::error_chain(e.as_ref()));
            }
        }
        None => eprintln!("error: {}", sse_runtime::error_chain(e.as_ref())),
    }
}
