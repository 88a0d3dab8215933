//! `nimbus-client install-service`: on Windows, a Task Scheduler task that
//! starts the client at logon, starts it again within five minutes if it
//! is not running (never a second copy), and restarts it if it fails.
//! Elsewhere it points to the systemd and launchd definitions in
//! `docs/deploy/`.
//!
//! The task is registered with `schtasks /Create /XML`, from a definition
//! built here (`--print` shows it).

use crate::ClientError;
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
    /// Name of the scheduled task.
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
    if a.remove {
        return schtasks(&["/Delete", "/TN", &a.task_name, "/F"])
            .map(|()| format!("removed the scheduled task {:?}", a.task_name));
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
    let user = match (std::env::var("USERDOMAIN"), std::env::var("USERNAME")) {
        (Ok(d), Ok(u)) if !d.is_empty() => Some(format!("{d}\\{u}")),
        (_, Ok(u)) => Some(u),
        _ => None,
    };
    let xml = task_xml(
        &path_text(&exe)?,
        &args,
        user.as_deref(),
        &format!("Backs up {} to {server} (Nimbus)", dir.display()),
    );
    if a.print {
        return Ok(xml);
    }
    if !cfg!(windows) {
        return Err(ClientError::Usage(
            "install-service registers a Windows scheduled task. On Linux use the systemd \
                    user unit docs/deploy/nimbus-client.service, on macOS the launchd agent \
                    docs/deploy/org.nimbus.client.plist (see README)"
                .into(),
        ));
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
    let out = Command::new("schtasks")
        .args(args)
        .output()
        .map_err(|e| ClientError::Setup(format!("cannot run schtasks: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClientError::Setup(format!(
            "schtasks failed: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
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
