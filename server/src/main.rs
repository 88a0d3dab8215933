//! `nimbus-server`: parses the command line and either runs the server until
//! SIGTERM or Ctrl-C, or runs an account command (`nimbus-server user ...`).

use clap::Parser;
use nimbus_server::config::{Args, Command, Config};
use nimbus_server::vault::{self, UnlockOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    nimbus_common::logger::init();
    let mut args = Args::parse();
    let command = args.command.take();
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nimbus-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Commands other than the server itself unlock an encrypted data
    // directory but never set encryption up.
    let unlock = UnlockOptions {
        encryption: false,
        ..config.unlock.clone()
    };
    let vault = || vault::open(&config.data, &unlock).map(|(v, _)| v);
    let result = match command {
        Some(Command::User { action }) => vault().map_err(|e| e.to_string()).and_then(|v| {
            nimbus_server::usercmd::run(&config.data, config.store.as_ref(), v, action)
                .map_err(|e| e.to_string())
        }),
        Some(Command::Policy { action }) => vault().map_err(|e| e.to_string()).and_then(|v| {
            nimbus_server::policycmd::run(&config.data, v, action).map_err(|e| e.to_string())
        }),
        Some(Command::Prune { dry_run }) => vault().map_err(|e| e.to_string()).and_then(|v| {
            nimbus_server::maintenance::prune_command(&config, v, dry_run)
                .map_err(|e| e.to_string())
        }),
        Some(Command::Check { read_data }) => match vault() {
            Err(e) => Err(e.to_string()),
            Ok(v) => match nimbus_server::maintenance::check_command(
                &config.data,
                config.store.as_ref(),
                v,
                read_data,
            ) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e.to_string()),
            },
        },
        Some(Command::Recover) => recover(&config, &unlock),
        Some(Command::Encrypt) => {
            nimbus_server::keycmd::encrypt(&config.data, &config.unlock).map_err(|e| e.to_string())
        }
        Some(Command::Key { action }) => {
            nimbus_server::keycmd::run(&config.data, &unlock, action).map_err(|e| e.to_string())
        }
        Some(Command::ReleaseKey { file }) => nimbus_server::release::key_command(&file)
            .map(|public| println!("{public}"))
            .map_err(|e| e.to_string()),
        Some(Command::ReleaseSign { key, builds }) => {
            nimbus_server::release::sign_command(&key, &builds).map_err(|e| e.to_string())
        }
        None => nimbus_server::run(config).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nimbus-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `nimbus-server --data NEWDIR --store s3://... recover`
fn recover(config: &nimbus_server::config::Config, unlock: &UnlockOptions) -> Result<(), String> {
    let Some(opts) = &config.store else {
        return Err(
            "recover rebuilds from a bucket: give --store s3://BUCKET/PREFIX and its --s3-endpoint"
                .into(),
        );
    };
    let r = nimbus_server::store::ship::recover_catalog(&config.data, opts)
        .map_err(|e| format!("recover: {e}"))?;
    if let Some(at) = r.gap_after {
        eprintln!(
            "nimbus-server: the journal segments in the bucket stop after record {at} (a gap): later ones were not used"
        );
    }
    // Load it as the server will, and say what is there.
    let (v, _) = vault::open(&config.data, unlock).map_err(|e| e.to_string())?;
    let dm = nimbus_server::store::DataManager::open_configured(&config.data, v, Some(opts))
        .map_err(|e| e.to_string())?;
    let s = dm.stats();
    println!(
        "recovered {} from {}: snapshot {}, {} journal segment(s), up to record {}; {} files, {} blobs ({} missing)",
        config.data.display(),
        opts.url(),
        r.snapshot.map_or("none".to_string(), |n| format!("at record {n}")),
        r.segments,
        r.seq,
        s.files,
        s.blobs,
        s.missing
    );
    Ok(())
}
