//! `nimbus-client install-service`: makes the client start with the
//! user's session and restart if it stops, with the system's own service
//! manager, for the user alone (no administrator rights):
//!
//! - Windows: a Task Scheduler task that starts the client at logon, starts
//!   it again within five minutes if it is not running (never a second
//!   copy), and restarts it if it fails; registered with `schtasks /Create
//!   /XML` from a definition built here.
//! - Linux: a systemd user unit, `nimbus-client.service` in
//!   `~/.config/systemd/user/`, enabled and started with `systemctl --user`.
//! - macOS: a launchd agent, `~/Library/LaunchAgents/org.nimbus.client.plist`,
//!   loaded with `launchctl`.
//!
//! `--print` shows the definition instead of installing it; `--remove`
//! takes it away.

use crate::ClientError;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    /// Server URL, e.g. http://backup-vm:9090
    #[arg(long, value_name = "URL", required_unless_present = "remove")]
    pub server: Option<String>,
    /// Folder to back up.
    #[arg(long, value_name = "DIR", required_unless_present = "remove")]
    pub dir: Option<PathBuf>,
    /// Name of this machine on the server. [default: the host name]
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Config file holding the login. [default: %APPDATA%\Nimbus\client.json]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also trust these PEM certificates for https:// servers.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Name of the scheduled task (Windows).
    #[arg(long, value_name = "NAME", default_value = "Nimbus backup")]
    pub task_name: String,
    /// Print the task definition (XML) instead of registering it.
    #[arg(long)]
    pub print: bool,
    /// Remove the task instead.
    #[arg(long, conflicts_with = "print")]
    pub remove: bool,
}

/// Runs the command; Ok(what was done, for the user).
pub fn run(a: ServiceArgs) -> Result<String, ClientError> {
    let manager = Manager::here();
    if a.remove {
        return manager.remove(&a);
    }
    let (server, dir) = (a.server.clone().unwrap(), a.dir.clone().unwrap());
    let dir = std::path::absolute(&dir)
        .map_err(|e| ClientError::Local(format!("{}: {e}", dir.display())))?;
    if !a.print && !dir.is_dir() {
        return Err(ClientError::Usage(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| ClientError::Setup(format!("cannot find this program: {e}")))?;
    let mut args = vec!["--server".to_string(), server.clone(), "--dir".into()];
    args.push(path_text(&dir)?);
    for (flag, value) in [("--config", &a.config), ("--ca", &a.ca)] {
        if let Some(v) = value {
            let v = std::path::absolute(v)
                .map_err(|e| ClientError::Local(format!("{}: {e}", v.display())))?;
            args.extend([flag.to_string(), path_text(&v)?]);
        }
    }
    if let Some(n) = &a.name {
        args.extend(["--name".to_string(), n.clone()]);
    }
    let description = format!("Backs up {} to {server} (Nimbus)", dir.display());
    let exe = path_text(&exe)?;
    match manager {
        Manager::TaskScheduler => install_task(&a, &exe, &args, &description),
        Manager::Systemd => {
            let unit = systemd_unit(&exe, &args, &description);
            if a.print {
                return Ok(unit);
            }
            install_unit(&unit)
        }
        Manager::Launchd => {
            let log = dirs::home_dir()
                .unwrap_or_default()
                .join("Library/Logs/nimbus-client.log");
            let plist = launchd_plist(&exe, &args, &path_text(&log)?);
            if a.print {
                return Ok(plist);
            }
            install_agent(&plist)
        }
    }
}

/// The service manager of this system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    TaskScheduler,
    Systemd,
    Launchd,
}

/// The systemd user unit's name.
const UNIT: &str = "nimbus-client.service";
/// The launchd agent's label.
const AGENT: &str = "org.nimbus.client";

impl Manager {
    fn here() -> Manager {
        if cfg!(windows) {
            Manager::TaskScheduler
        } else if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }

    fn remove(self, a: &ServiceArgs) -> Result<String, ClientError> {
        match self {
            Manager::TaskScheduler => schtasks(&["/Delete", "/TN", &a.task_name, "/F"])
                .map(|()| format!("removed the scheduled task {:?}", a.task_name)),
            Manager::Systemd => {
                let file = unit_path();
                systemctl(&["disable", "--now", UNIT])?;
                remove_file(&file)?;
                systemctl(&["daemon-reload"])?;
                Ok(format!("stopped and removed {}", file.display()))
            }
            Manager::Launchd => {
                let file = agent_path();
                let _ = run_tool("launchctl", &["unload", "-w", &path_text(&file)?]);
                remove_file(&file)?;
                Ok(format!("stopped and removed {}", file.display()))
            }
        }
    }
}

fn remove_file(file: &Path) -> Result<(), ClientError> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ClientError::Local(format!("{}: {e}", file.display()))),
    }
}

/// Where the systemd user unit goes: `$XDG_CONFIG_HOME/systemd/user/`.
fn unit_path() -> PathBuf {
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from(".config"))
        .join("systemd/user")
        .join(UNIT)
}

fn agent_path() -> PathBuf {
    dirs::home_dir()
        .unwrap_or_default()
        .join("Library/LaunchAgents")
        .join(format!("{AGENT}.plist"))
}

/// Writes a file the service manager reads (atomically: a manager reading
/// it meanwhile sees the old one or the new one).
fn write_definition(file: &Path, text: &str) -> Result<(), ClientError> {
    let err = |e: std::io::Error| ClientError::Local(format!("{}: {e}", file.display()));
    std::fs::create_dir_all(file.parent().expect("a file in a folder")).map_err(err)?;
    nimbus_common::durable::write_atomic(file, |w| w.write_all(text.as_bytes())).map_err(err)
}

fn install_unit(unit: &str) -> Result<String, ClientError> {
    let file = unit_path();
    write_definition(&file, unit)?;
    let enabled =
        systemctl(&["daemon-reload"]).and_then(|()| systemctl(&["enable", "--now", UNIT]));
    match enabled {
        Ok(()) => Ok(format!(
            "wrote {} and started it: this client now runs whenever you are logged in, and \
             restarts if it stops (`loginctl enable-linger` keeps it running while you are not). \
             Follow it with: journalctl --user -u nimbus-client -f; remove it with: \
             nimbus-client install-service --remove",
            file.display()
        )),
        Err(e) => Err(ClientError::Setup(format!(
            "wrote {}, but could not start it ({e}); with no systemd user session here, \
             run the client from your own startup script instead",
            file.display()
        ))),
    }
}

fn install_agent(plist: &str) -> Result<String, ClientError> {
    let file = agent_path();
    write_definition(&file, plist)?;
    let path = path_text(&file)?;
    // A loaded agent is replaced, not doubled.
    let _ = run_tool("launchctl", &["unload", &path]);
    run_tool("launchctl", &["load", "-w", &path]).map(|()| {
        format!(
            "wrote {} and loaded it: this client now runs whenever you are logged in, and \
             restarts if it stops; remove it with: nimbus-client install-service --remove",
            file.display()
        )
    })
}

fn systemctl(args: &[&str]) -> Result<(), ClientError> {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    run_tool("systemctl", &all)
}

fn run_tool(tool: &str, args: &[&str]) -> Result<(), ClientError> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| ClientError::Setup(format!("cannot run {tool}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClientError::Setup(format!(
            "{tool} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The systemd user unit. Arguments are quoted as systemd splits
/// `ExecStart`, with `%` and `$` doubled so that none is expanded.
pub fn systemd_unit(exe: &str, args: &[String], description: &str) -> String {
    let quote = |a: &str| {
        let escaped = a
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('%', "%%")
            .replace('$', "$$");
        format!("\"{escaped}\"")
    };
    let line: Vec<String> = std::iter::once(exe)
        .chain(args.iter().map(String::as_str))
        .map(quote)
        .collect();
    let one_line = |s: &str| s.replace(['\n', '\r'], " ").replace('%', "%%");
    format!(
        "# Made by nimbus-client install-service; remove with\n\
         # nimbus-client install-service --remove\n\
         [Unit]\n\
         Description={}\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={}\n\
         Restart=on-failure\n\
         RestartSec=10\n\
         # Exit codes 2 and 3: a setup error or a revoked device; fix it first.\n\
         RestartPreventExitStatus=2 3\n\
         Nice=10\n\
         IOSchedulingClass=idle\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        one_line(description),
        line.join(" ")
    )
}

/// The launchd agent.
pub fn launchd_plist(exe: &str, args: &[String], log: &str) -> String {
    let strings: String = std::iter::once(exe)
        .chain(args.iter().map(String::as_str))
        .map(|a| format!("    <string>{}</string>\n", xml_escape(a)))
        .collect();
    let log = xml_escape(log);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>{AGENT}</string>
  <key>ProgramArguments</key>
  <array>
{strings}  </array>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <dict>
    <key>SuccessfulExit</key>
    <false/>
  </dict>
  <key>ThrottleInterval</key>
  <integer>10</integer>
  <key>ProcessType</key>
  <string>Background</string>
  <key>LowPriorityIO</key>
  <true/>
  <key>StandardOutPath</key>
  <string>{log}</string>
  <key>StandardErrorPath</key>
  <string>{log}</string>
</dict>
</plist>
"#
    )
}

fn install_task(
    a: &ServiceArgs,
    exe: &str,
    args: &[String],
    description: &str,
) -> Result<String, ClientError> {
    let user = match (std::env::var("USERDOMAIN"), std::env::var("USERNAME")) {
        (Ok(d), Ok(u)) if !d.is_empty() => Some(format!("{d}\\{u}")),
        (_, Ok(u)) => Some(u),
        _ => None,
    };
    let xml = task_xml(exe, args, user.as_deref(), description);
    if a.print {
        return Ok(xml);
    }
    let file = crate::login::app_dir(false).join("nimbus-task.xml");
    std::fs::create_dir_all(file.parent().unwrap())
        .map_err(|e| ClientError::Local(format!("{}: {e}", file.display())))?;
    // Task Scheduler reads its definitions as UTF-16 with a byte-order mark.
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(xml.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(&file, bytes)
        .map_err(|e| ClientError::Local(format!("{}: {e}", file.display())))?;
    let result = schtasks(&[
        "/Create",
        "/TN",
        &a.task_name,
        "/XML",
        &path_text(&file)?,
        "/F",
    ]);
    let _ = std::fs::remove_file(&file);
    result.map(|()| {
        format!(
            "the scheduled task {:?} now runs this client at every logon (and restarts it if it stops); \
             start it now with: schtasks /Run /TN \"{}\"; remove it with: nimbus-client install-service --remove",
            a.task_name, a.task_name
        )
    })
}

fn path_text(p: &Path) -> Result<String, ClientError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| ClientError::Usage(format!("{} is not valid Unicode", p.display())))
}

fn schtasks(args: &[&str]) -> Result<(), ClientError> {
    run_tool("schtasks", args)
}

/// The Task Scheduler definition.
pub fn task_xml(exe: &str, args: &[String], user: Option<&str>, description: &str) -> String {
    let user_id = user
        .map(|u| format!("<UserId>{}</UserId>", xml_escape(u)))
        .unwrap_or_default();
    let command_line: Vec<String> = args.iter().map(|a| windows_quote(a)).collect();
    let folder = exe.rsplit_once('\\').map_or("", |(d, _)| d);
    format!(
        r#"<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>{description}</Description>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      {user_id}
    </LogonTrigger>
    <TimeTrigger>
      <Repetition>
        <Interval>PT5M</Interval>
        <StopAtDurationEnd>false</StopAtDurationEnd>
      </Repetition>
      <StartBoundary>2000-01-01T00:00:00</StartBoundary>
      <Enabled>true</Enabled>
    </TimeTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      {user_id}
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <Priority>7</Priority>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>{}</Command>
      <Arguments>{}</Arguments>
      <WorkingDirectory>{}</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
"#,
        xml_escape(exe),
        xml_escape(&command_line.join(" ")),
        xml_escape(folder),
        description = xml_escape(description),
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One argument of a Windows command line, quoted so that the C runtime's
/// parser gives it back unchanged (backslashes before a quote, and at the
/// end of a quoted argument, are doubled).
pub fn windows_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            c => {
                out.push_str(&"\\".repeat(backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes * 2));
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_survive_the_windows_command_line() {
        assert_eq!(
            windows_quote(r"C:\Users\ann\Documents"),
            r"C:\Users\ann\Documents"
        );
        assert_eq!(windows_quote(r"C:\My Files"), r#""C:\My Files""#);
        assert_eq!(windows_quote(r"C:\My Files\"), r#""C:\My Files\\""#);
        assert_eq!(windows_quote(r#"say "hi""#), r#""say \"hi\"""#);
        assert_eq!(windows_quote(r#"a\"b c"#), r#""a\\\"b c""#);
        assert_eq!(windows_quote(""), r#""""#);
    }

    #[test]
    fn the_systemd_unit_runs_the_client_with_its_arguments_unexpanded() {
        let unit = systemd_unit(
            "/home/ann/.local/bin/nimbus-client",
            &[
                "--server".into(),
                "http://nas:9090".into(),
                "--dir".into(),
                "/home/ann/My \"100%\" $HOME".into(),
            ],
            "Backs up 100% of it",
        );
        for want in [
            r#"ExecStart="/home/ann/.local/bin/nimbus-client" "--server" "http://nas:9090" "--dir" "/home/ann/My \"100%%\" $$HOME""#,
            "Description=Backs up 100%% of it",
            "Restart=on-failure",
            "RestartPreventExitStatus=2 3",
            "WantedBy=default.target",
        ] {
            assert!(unit.contains(want), "{want} missing from\n{unit}");
        }
    }

    #[test]
    fn the_launchd_agent_runs_the_client_at_login() {
        let plist = launchd_plist(
            "/Users/ann/.local/bin/nimbus-client",
            &["--dir".into(), "/Users/ann/A & B".into()],
            "/Users/ann/Library/Logs/nimbus-client.log",
        );
        for want in [
            "<string>org.nimbus.client</string>",
            "    <string>/Users/ann/.local/bin/nimbus-client</string>\n    <string>--dir</string>\n    <string>/Users/ann/A &amp; B</string>\n  </array>",
            "<key>RunAtLoad</key>\n  <true/>",
            "<string>/Users/ann/Library/Logs/nimbus-client.log</string>",
        ] {
            assert!(plist.contains(want), "{want} missing from\n{plist}");
        }
    }

    #[test]
    fn the_task_runs_the_client_at_logon_and_never_twice() {
        let xml = task_xml(
            r"C:\Users\ann\AppData\Local\Programs\Nimbus\nimbus-client.exe",
            &[
                "--server".into(),
                "http://nas:9090/?a=1&b=2".into(),
                "--dir".into(),
                r"C:\Users\ann\My <Docs>".into(),
            ],
            Some(r"HOME\ann"),
            "Backs up <x> & y",
        );
        for want in [
            "<LogonTrigger>",
            "<UserId>HOME\\ann</UserId>",
            "<MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>",
            "<RestartOnFailure>",
            "<ExecutionTimeLimit>PT0S</ExecutionTimeLimit>",
            r"<Command>C:\Users\ann\AppData\Local\Programs\Nimbus\nimbus-client.exe</Command>",
            r"<Arguments>--server http://nas:9090/?a=1&amp;b=2 --dir &quot;C:\Users\ann\My &lt;Docs&gt;&quot;</Arguments>",
            r"<WorkingDirectory>C:\Users\ann\AppData\Local\Programs\Nimbus</WorkingDirectory>",
            "<Description>Backs up &lt;x&gt; &amp; y</Description>",
        ] {
            assert!(xml.contains(want), "{want} missing from\n{xml}");
        }
    }
}
