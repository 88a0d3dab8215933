//! `nimbus-server`: parses the command line and runs the server until
//! SIGTERM or Ctrl-C.

use clap::Parser;
use nimbus_server::config::{Args, Config};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nimbus-server: {e}");
            return ExitCode::from(2);
        }
    };
    match nimbus_server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nimbus-server: {e}");
            ExitCode::FAILURE
        }
    }
}
