//! The command line: parses the arguments, runs the command, and decides
//! the exit code in one place.

use crate::backup::{sleep_unless_stopped, Backup};
use crate::ClientError;
use crate::{activity, api, login, policy, restore, service, state, tls, update};
use clap::{Parser, Subcommand};
use log::{error, info, warn};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// With the server unreachable, `--once` gives up after about this long.
const ONCE_GIVE_UP: Duration = Duration::from_secs(100);
/// Longest wait between passes while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(
    name = "nimbus-client",
    version = update::long_version(),
    about = "Backs up a folder to a Nimbus server and keeps it backed up: every new or \
             changed file is sent within seconds, and nothing is marked done until the \
             server has acknowledged it.",
    after_help = "Example: nimbus-client --server http://backup-vm:9090 --dir ~/Documents\n\
                  It survives a server that is down: it retries with backoff and catches up.\n\
                  Log in once first (nimbus-client login --server URL --user NAME) to use an account.\n\n\
                  On Windows: put nimbus-client.exe in %LOCALAPPDATA%\\Programs\\Nimbus, open a Command Prompt there, run\n  \
                  nimbus-client.exe login --server http://backup-vm:9090 --user NAME\n\
                  then make it start at every logon (and again if it stops) with\n  \
                  nimbus-client.exe install-service --server http://backup-vm:9090 --dir %USERPROFILE%\\Documents\n\
                  Its login and state live in %APPDATA%\\Nimbus.",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    to: ServerArgs,
    /// Folder to back up (recursively).
    #[arg(long, value_name = "DIR", required = true)]
    dir: Option<PathBuf>,
    /// Name of this machine on the server. [default: the host name]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Seconds between passes over the folder. [default: the server's
    /// policy, else 3]
    #[arg(long, value_name = "SECS")]
    interval: Option<f64>,
    /// A file is sent only after it has been unmodified this many seconds.
    /// [default: the server's policy, else 2]
    #[arg(long, value_name = "SECS")]
    settle: Option<f64>,
    /// Leave out files and folders matching PATTERN (gitignore syntax,
    /// relative to --dir), besides the server policy's exclusions and the
    /// .nimbusignore files in the folder. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Back up this folder too, under NAME (default: its last part) at the
    /// top of the machine's files, besides --dir and the server policy's
    /// folders. Repeatable.
    #[arg(long, value_name = "[NAME=]PATH")]
    folder: Vec<String>,
    /// Do not back up files larger than this many bytes. [default: the
    /// server's policy, else no limit]
    #[arg(long, value_name = "BYTES")]
    max_file_size: Option<u64>,
    /// Send at most this many bytes per second, all uploads together (0:
    /// no limit). [default: the server's policy, else no limit]
    #[arg(long, value_name = "BYTES")]
    upload_limit: Option<u64>,
    /// State file recording what the server has acknowledged.
    /// [default: one per server and folder in %APPDATA%\\Nimbus on Windows, ~/.local/share/nimbus on Linux]
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Files hashed and sent at the same time.
    #[arg(long, value_name = "N", default_value_t = 4)]
    jobs: usize,
    /// Back up once (waiting for unsettled files), then exit: 0 when
    /// everything is backed up, 1 otherwise.
    #[arg(long)]
    once: bool,
    /// Seconds between status reports to the server while nothing changes
    /// (so the admin sees the machine is alive).
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    heartbeat: f64,
    /// Do not install the newer versions the server offers (a build
    /// without a release key never does).
    #[arg(long)]
    no_self_update: bool,
    /// Seconds a newly installed version has, from its first start, to
    /// reach the server before the previous one is put back.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    update_probation: u64,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Register this machine under a user on the server and keep its token.
    Login {
        #[command(flatten)]
        to: ServerArgs,
        /// The user to log in as.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Name of this machine on the server. [default: the host name]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Register this machine with an enrollment code from the server's page
    /// ("Add a machine") instead of a password, and keep its token.
    #[command(
        after_help = "Example:\n  nimbus-client enroll --server http://backup-vm:9090 7KQ2-M9XD-4HWT-B1ZE\n\
                      A code works once, for 24 hours; make a new one on the page if it has expired."
    )]
    Enroll {
        #[command(flatten)]
        to: ServerArgs,
        /// The code shown on the page (case and dashes do not matter).
        #[arg(value_name = "CODE")]
        code: String,
        /// Name of this machine on the server. [default: the host name]
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
    },
    /// What the backup running on this machine is doing: its last pass,
    /// pending files, errors, the server's last answer (read from the
    /// running client's files; the server is not asked).
    Status {
        /// The backup's state file, when it runs with --state. [default: every backup of this user]
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Restore files and folders as they were at a time (default: now).
    #[command(
        after_help = "Examples:\n  nimbus-client restore --server URL --at 2026-11-20 --to ~/restored\n  \
                      nimbus-client restore --server URL --from old-laptop --to ./back Documents/taxes\n\
                      Run it again after an interruption: finished files are kept, large ones resume."
    )]
    Restore(RestoreArgs),
    /// Windows: start this client at every logon, and again if it stops
    /// (a Task Scheduler task). Linux and macOS: see docs/deploy.
    #[command(
        after_help = "Example (in a Command Prompt, after logging in once):\n  \
                      nimbus-client.exe install-service --server http://backup-vm:9090 --dir %USERPROFILE%\\Documents\n\
                      Remove it with: nimbus-client.exe install-service --remove"
    )]
    InstallService(service::ServiceArgs),
}

#[derive(clap::Args, Debug)]
struct RestoreArgs {
    #[command(flatten)]
    to_server: ServerArgs,
    /// Restore files of this machine of yours. [default: this machine]
    #[arg(long, value_name = "MACHINE")]
    from: Option<String>,
    /// As they were at this time: unix seconds, RFC 3339
    /// (2026-11-20T18:00:00Z) or a date (2026-11-20, its end in UTC). [default: now]
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Folder to restore into. [default: the folder this machine backs up]
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// The backup's state file, when the backup runs with --state: it names
    /// the folder that --to defaults to.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Replace local files whose content differs (after the new content is
    /// fully written and verified).
    #[arg(long)]
    overwrite: bool,
    /// Restore names this system cannot hold under a safe name instead of
    /// skipping them.
    #[arg(long)]
    rename_invalid: bool,
    /// Apply Windows' naming rules (always on Windows): useful when DIR is a
    /// share that Windows machines use.
    #[arg(long)]
    windows_names: bool,
    /// Files or folders to restore, relative to the backed-up folder. [default: everything]
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

/// How to reach a server, the same for backing up, logging in and
/// restoring: its URL, the config file holding the login kept for it, and
/// the certificates to trust.
#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// Server URL, e.g. http://backup-vm:9090
    #[arg(long, value_name = "URL", required = true)]
    server: Option<String>,
    /// Config file holding this machine's login per server (created 0600).
    /// [default: client.json in %APPDATA%\\Nimbus on Windows, ~/.config/nimbus on Linux]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also trust these PEM certificates (a private CA, or the server's
    /// self-signed certificate) for https:// servers.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

impl ServerArgs {
    /// The server's URL, without a trailing '/'.
    fn url(&self) -> Result<String, ClientError> {
        let server = self
            .server
            .as_deref()
            .ok_or_else(|| ClientError::Usage("--server is required".into()))?
            .trim_end_matches('/')
            .to_string();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            return Err(ClientError::Usage(format!(
                "--server must be an http:// or https:// URL, got {server:?}"
            )));
        }
        Ok(server)
    }

    fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(login::default_config_path)
    }

    /// The login this machine keeps for `server`, if any.
    fn saved_login(&self, server: &str) -> Result<Option<login::Login>, ClientError> {
        Ok(login::ClientConfig::load(&self.config_path())?
            .servers
            .remove(server))
    }

    /// An HTTP agent with these certificates and timeouts.
    fn agent(&self, connect: Duration, read: Duration) -> Result<ureq::Agent, ClientError> {
        tls::agent(self.ca.as_deref(), connect, read)
    }
}

/// Runs `nimbus-client` with the process's arguments. Every command returns
/// its exit code or a [`ClientError`]; the error's variant decides the
/// exit code and the advice, here and nowhere else.
pub fn main() -> ExitCode {
    nimbus_common::logger::init();
    let mut args = Args::parse();
    let mut server = args.to.server.clone();
    let result = match args.command.take() {
        Some(Cmd::Login {
            to,
            user,
            name,
            password_stdin,
        }) => {
            server = to.server.clone();
            run_login(&to, user, name, password_stdin)
        }
        Some(Cmd::Enroll { to, code, name }) => {
            server = to.server.clone();
            run_enroll(&to, &code, name)
        }
        Some(Cmd::Status { state }) => run_status(state.as_deref()),
        Some(Cmd::InstallService(s)) => service::run(s).map(|text| {
            println!("{text}");
            ExitCode::SUCCESS
        }),
        Some(Cmd::Restore(r)) => {
            server = r.to_server.server.clone();
            run_restore(r)
        }
        None => run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            error!("{e}");
            if let Some(advice) = e.advice(server.as_deref().unwrap_or("URL")) {
                error!("{advice}");
            }
            e.exit_code()
        }
    }
}

fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Exit code 0 when a backup is running, 1 when none is.
fn run_status(state: Option<&std::path::Path>) -> Result<ExitCode, ClientError> {
    let files = activity::find(state);
    let reports: Vec<(String, bool)> = files.iter().filter_map(|f| activity::describe(f)).collect();
    if reports.is_empty() {
        println!(
            "no backup has run here{}",
            match state {
                Some(s) => format!(" with the state file {}", s.display()),
                None => format!(
                    " as this user (nothing in {})",
                    login::app_dir(true).display()
                ),
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    for (text, _) in &reports {
        print!("{text}");
    }
    Ok(if reports.iter().any(|(_, alive)| *alive) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_enroll(to: &ServerArgs, code: &str, name: Option<String>) -> Result<ExitCode, ClientError> {
    let server = to.url()?;
    let machine = name.unwrap_or_else(host_name);
    let config = to.config_path();
    nimbus_common::paths::validate_client_name(&machine)
        .map_err(|e| ClientError::Usage(format!("--name {machine:?}: {e}")))?;
    let agent = to.agent(Duration::from_secs(10), Duration::from_secs(60))?;
    let l = login::enroll(&agent, &server, code.trim(), &machine, &config)?;
    println!(
        "enrolled machine {:?} of {} on {server} (device {}); token kept in {}",
        l.machine,
        l.user,
        l.device,
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_login(
    to: &ServerArgs,
    user: String,
    name: Option<String>,
    password_stdin: bool,
) -> Result<ExitCode, ClientError> {
    let server = to.url()?;
    let machine = name.unwrap_or_else(host_name);
    let config = to.config_path();
    nimbus_common::paths::validate_client_name(&machine)
        .map_err(|e| ClientError::Usage(format!("--name {machine:?}: {e}")))?;
    let password = login::read_password(password_stdin)?;
    let agent = to.agent(Duration::from_secs(10), Duration::from_secs(60))?;
    let l = login::login(&agent, &server, &user, &machine, &password, &config)?;
    println!(
        "logged in to {server} as {} from machine {:?} (device {}); token kept in {}",
        l.user,
        l.machine,
        l.device,
        config.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_restore(args: RestoreArgs) -> Result<ExitCode, ClientError> {
    let server = args.to_server.url()?;
    let login = args.to_server.saved_login(&server)?.ok_or_else(|| {
        ClientError::LoggedOut(format!("this machine has not logged in to {server}"))
    })?;
    let from = args.from.unwrap_or_else(|| login.machine.clone());
    nimbus_common::paths::validate_client_name(&from)
        .map_err(|e| ClientError::Usage(format!("--from {from:?}: {e}")))?;
    let at = args
        .at
        .as_deref()
        .map(nimbus_common::time::parse_time)
        .transpose()
        .map_err(|e| ClientError::Usage(format!("--at: {e}")))?;
    let to = match args.to {
        Some(t) => t,
        None => restore::watched_folder(&server, &from, args.state.as_deref()).ok_or_else(|| {
            ClientError::Usage(format!(
                "give --to DIR: no single folder of {from:?} is known to be backed up to {server} from here"
            ))
        })?,
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| ClientError::Setup(format!("cannot install the signal handler: {e}")))?;
    }
    let agent = args
        .to_server
        .agent(Duration::from_secs(10), Duration::from_secs(120))?;
    let api = api::Api::new(&server, &login.machine, Some(login.token.clone()), agent);
    let job = restore::Restore {
        api: &api,
        from: from.clone(),
        at,
        to: to.clone(),
        paths: args
            .paths
            .iter()
            .map(|p| restore::normalize_wanted(p))
            .collect(),
        overwrite: args.overwrite,
        windows_names: args.windows_names || cfg!(windows),
        rename_invalid: args.rename_invalid,
        stop: &stop,
    };
    let files = job.plan()?;
    if files.is_empty() {
        return Err(ClientError::Usage(format!(
            "nothing to restore: {from:?} had no such files{}",
            at.map(|t| format!(" at {}", nimbus_common::time::format_utc(t)))
                .unwrap_or_default()
        )));
    }
    restore::log_plan(&files, &from, &to);
    let sum = job.run(&files);
    println!("{}", sum.line());
    if stop.load(Ordering::SeqCst) {
        info!("stopped; run the same command again to resume");
        return Ok(ExitCode::from(130));
    }
    Ok(if sum.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn status_report(
    sum: &crate::backup::Summary,
    policy: Option<String>,
) -> nimbus_common::wire::StatusReport {
    nimbus_common::wire::StatusReport {
        version: update::VERSION.to_string(),
        os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        scanned: sum.scanned as u64,
        uploaded: sum.uploaded as u64,
        deleted: sum.deleted as u64,
        pending: sum.pending as u64,
        errors: sum.errors as u64,
        last_error: sum.failures.last().map(|f| {
            let mut f = f.clone();
            if f.len() > 1000 {
                f.truncate(f.floor_char_boundary(1000));
            }
            f
        }),
        policy,
        problems: sum.problems[sum
            .problems
            .len()
            .saturating_sub(nimbus_common::wire::MAX_PROBLEMS)..]
            .iter()
            .map(|p| {
                let cut = |s: &str, max: usize| s[..s.floor_char_boundary(max)].to_string();
                nimbus_common::wire::Problem {
                    path: cut(&p.path, 4096),
                    message: cut(&p.message, 1000),
                }
            })
            .collect(),
    }
}

fn run(args: Args) -> Result<ExitCode, ClientError> {
    let server = args.to.url()?;
    let Some(dir_arg) = args.dir else {
        return Err(ClientError::Usage("--dir is required".into()));
    };
    if !(args.heartbeat.is_finite() && args.heartbeat > 0.0) {
        return Err(ClientError::Usage(
            "--heartbeat must be a positive number of seconds".into(),
        ));
    }
    if args.interval.is_some_and(|i| !(i.is_finite() && i > 0.0)) {
        return Err(ClientError::Usage(
            "--interval must be a positive number of seconds".into(),
        ));
    }
    if args.jobs == 0 {
        return Err(ClientError::Usage("--jobs must be at least 1".into()));
    }
    if args.settle.is_some_and(|s| !(s.is_finite() && s >= 0.0)) {
        return Err(ClientError::Usage(
            "--settle must be zero or more seconds".into(),
        ));
    }
    let dir = std::fs::canonicalize(&dir_arg).map_err(|e| {
        ClientError::Local(format!("cannot open the folder {}: {e}", dir_arg.display()))
    })?;
    if !dir.is_dir() {
        return Err(ClientError::Usage(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let login = args.to.saved_login(&server)?;
    let name = match (args.name, &login) {
        (Some(n), _) => n,
        (None, Some(l)) => l.machine.clone(),
        (None, None) => host_name(),
    };
    nimbus_common::paths::validate_client_name(&name)
        .map_err(|e| ClientError::Usage(format!("--name {name:?}: {e}")))?;
    let dir_text = dir.to_string_lossy().into_owned();
    let state_path = args
        .state
        .unwrap_or_else(|| state::default_path(&server, &dir_text, &name));
    // One loop per state: a second one (a scheduled task firing while a
    // restarted client runs) has nothing to do and ends successfully;
    // `--once` cannot say all is backed up, so it is an error there.
    let _lock = match state::lock(&state_path, Duration::from_secs(15)) {
        Ok(l) => l,
        Err(state::LockError::Held) if args.once => {
            return Err(ClientError::Local(format!(
                "another nimbus-client is already backing up with {}",
                state_path.display()
            )))
        }
        Err(state::LockError::Held) => {
            info!(
                "another nimbus-client is already backing up with {}; nothing to do",
                state_path.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(state::LockError::Io(e)) => {
            return Err(ClientError::Local(format!(
                "cannot lock {}: {e}",
                state_path.with_extension("lock").display()
            )))
        }
    };
    let state = state::State::load(&state_path, &server, &dir_text, &name)
        .map_err(|e| ClientError::Local(e.to_string()))?;
    let mut policy = policy::Policy::load(
        policy::Flags {
            interval: args.interval,
            settle: args.settle,
            max_file_size: args.max_file_size,
            upload_limit: args.upload_limit,
            excludes: args.exclude.clone(),
            folders: folder_flags(&args.folder)?,
        },
        &dir,
        &state_path,
    )
    .map_err(ClientError::Usage)?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .map_err(|e| ClientError::Setup(format!("cannot install the signal handler: {e}")))?;
    }

    info!(
        "backing up {} to {server} as {name:?} (state in {})",
        dir.display(),
        state_path.display()
    );
    let agent = args
        .to
        .agent(Duration::from_secs(5), Duration::from_secs(120))?;
    let api = api::Api::new(
        &server,
        &name,
        login.as_ref().map(|l| l.token.clone()),
        agent,
    );
    // The first pass already leaves out what the policy excludes.
    if let Err(e) = policy.refresh(&api) {
        warn!("could not fetch the server's policy ({e}); applying the last one kept");
    }
    policy.check_flags().map_err(ClientError::Usage)?;
    let mut backup = Backup::new(
        dir,
        api,
        state,
        state_path,
        policy.settle(),
        stop.clone(),
        args.jobs,
    );
    let mut activity = activity::Recorder::new(&backup.state_path, &server, &name, &dir_text);
    let mut updater = update::Updater::new(
        &server,
        args.to
            .agent(Duration::from_secs(5), Duration::from_secs(120))?,
        Duration::from_secs(args.update_probation),
        args.no_self_update
            .then(|| "self-update is off (--no-self-update)".to_string()),
    );
    updater.start();
    activity.update_note(updater.note.clone());
    let heartbeat = Duration::from_secs_f64(args.heartbeat);
    let mut backoff = policy.interval();
    let mut down_since: Option<Instant> = None;
    let mut last_report: Option<Instant> = None;
    loop {
        if let Some(restart) = updater.overdue() {
            activity.update_note(updater.note.clone());
            let e = restart.now();
            return Err(ClientError::Setup(format!(
                "cannot start the previous version again: {e}"
            )));
        }
        if activity.now.doing != activity::Doing::Idle {
            activity.doing(activity::Doing::Backing, None);
        }
        // The policy as it stands now (it may have changed at the last
        // heartbeat, and windows open and close).
        let interval = policy.interval();
        backup.settle = policy.settle();
        let sources = policy.sources();
        let same = sources.len() == backup.sources.len()
            && sources
                .iter()
                .zip(&backup.sources)
                .all(|(a, b)| a.same_as(b));
        if !same {
            backup.sources = sources;
        }
        backup.may_upload = policy.may_upload();
        backup.api.throttle.set_rate(policy.rate());
        let sum = backup.pass();
        activity.pass(&sum);
        if sum.did_something() {
            println!("{}", sum.line());
        }
        if sum.server_problem.is_none()
            && sum.auth_problem.is_none()
            && (sum.did_something() || last_report.is_none_or(|t| t.elapsed() >= heartbeat))
        {
            let answer = backup.api.report(&status_report(&sum, policy.version()));
            if answer.is_ok() {
                if let Err(e) = policy.refresh(&backup.api) {
                    warn!("could not fetch the server's policy: {e}");
                }
            }
            activity.heartbeat(match &answer {
                Ok(_) => "report accepted".to_string(),
                Err(e) => format!("report refused: {e}"),
            });
            if let Ok(offer) = &answer {
                updater.reached_server();
                activity.offered(offer.as_ref().map(|b| b.version.clone()));
                let restart = offer.as_ref().and_then(|o| updater.consider(o));
                activity.update_note(updater.note.clone());
                match restart {
                    // Once: this run ends as it would; the next one is the
                    // new version.
                    Some(_) if args.once => {}
                    Some(restart) => {
                        let e = restart.now();
                        return Err(ClientError::Setup(format!(
                            "cannot start the new version: {e}"
                        )));
                    }
                    None => {}
                }
            }
            match answer {
                Ok(_) => last_report = Some(Instant::now()),
                // An older server without the route, or a hiccup: the next
                // pass tries again; backing up matters more.
                Err(e) => {
                    if last_report.is_none() {
                        warn!("could not report status to the server: {e}");
                    }
                    last_report = Some(Instant::now());
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            info!("stopped; progress is saved");
            return Ok(ExitCode::from(130));
        }
        if let Some(problem) = sum.auth_problem {
            // The pass cannot go on until the user acts: the variant says
            // how (log in again, or pass --ca); the exit code is 3.
            return match problem {
                ClientError::Untrusted(_) => {
                    error!("{problem}");
                    Ok(ExitCode::from(3))
                }
                problem => Err(problem),
            };
        }
        let wait = match &sum.server_problem {
            Some(problem) => {
                let since = *down_since.get_or_insert_with(Instant::now);
                if args.once && since.elapsed() >= ONCE_GIVE_UP {
                    error!("giving up: {problem}");
                    eprintln!(
                        "not backed up: {} file(s) still to send; the server was unavailable",
                        sum.pending.max(1)
                    );
                    return Ok(ExitCode::FAILURE);
                }
                warn!("server unavailable ({problem}); next try in {backoff:?}");
                let w = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                w
            }
            None => {
                down_since = None;
                backoff = interval;
                if args.once && sum.outside_window {
                    eprintln!(
                        "not backed up: outside the server policy's backup windows ({} file(s) waiting)",
                        sum.pending
                    );
                    return Ok(ExitCode::FAILURE);
                }
                if args.once && sum.pending == 0 {
                    if sum.errors == 0 {
                        return Ok(ExitCode::SUCCESS);
                    }
                    eprintln!("not backed up ({} file(s)):", sum.failures.len());
                    for f in &sum.failures {
                        eprintln!("  {f}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
                if args.once {
                    // Files still settling: look again soon.
                    Duration::from_millis(250).max(interval.min(Duration::from_secs(1)))
                } else {
                    interval
                }
            }
        };
        if sleep_unless_stopped(wait, &stop) {
            info!("stopped; progress is saved");
            return Ok(ExitCode::from(130));
        }
    }
}

/// `--folder [NAME=]PATH` values as the policy spells folders.
fn folder_flags(given: &[String]) -> Result<Vec<nimbus_common::policy::Folder>, ClientError> {
    let folders: Vec<_> = given
        .iter()
        .map(|g| {
            let (name, path) = match g.split_once('=') {
                Some((n, p)) => (Some(n.trim().to_string()), p.trim()),
                None => (None, g.trim()),
            };
            let abs = std::path::absolute(path)
                .map_err(|e| ClientError::Usage(format!("--folder {g}: {e}")))?;
            Ok(nimbus_common::policy::Folder {
                path: abs.to_string_lossy().into_owned(),
                name,
                excludes: Vec::new(),
            })
        })
        .collect::<Result<_, ClientError>>()?;
    let check = nimbus_common::policy::Settings {
        folders: Some(folders.clone()),
        ..Default::default()
    };
    check
        .validate()
        .map_err(|e| ClientError::Usage(format!("--folder: {e}")))?;
    Ok(folders)
}
