//! `nimbus-client`: see the library's documentation (`lib.rs`).

fn main() -> std::process::ExitCode {
    nimbus_client::cli::main()
}
