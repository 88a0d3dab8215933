//! `GET /add-machine`: the way from the server's page to a running backup.
//! It offers the client program for the visitor's system (told by the
//! browser's User-Agent, all others listed below), with its size and
//! SHA-256, the commands that install and start it, and enrollment codes:
//! `POST /add-machine/codes` makes one (shown once, filled into the
//! commands), `POST /add-machine/codes/{id}/revoke` withdraws one. An admin
//! may make codes for any user.

use super::layout::{human_size, post_button, user_page};
use crate::accounts::{AccountError, Enrollment};
use crate::client_builds::{ClientBuild, Os};
use crate::http::auth::csrf::check_csrf;
use crate::http::auth::{require, Identity};
use crate::http::core::form::read_form;
use crate::http::core::request::header;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use maud::{html, Markup};
use nimbus_common::paths::encode_segment;
use nimbus_common::time::format_utc;
use tiny_http::Request;

/// The system and architecture a browser says it runs on.
pub fn detect(user_agent: &str) -> (Option<Os>, &'static str) {
    let ua = user_agent.to_ascii_lowercase();
    let os = if ua.contains("windows") {
        Some(Os::Windows)
    } else if ua.contains("iphone") || ua.contains("ipad") || ua.contains("android") {
        // No client for phones; the page still lists every build.
        None
    } else if ua.contains("mac os x") || ua.contains("macintosh") {
        Some(Os::Macos)
    } else if ua.contains("linux") || ua.contains("x11") {
        Some(Os::Linux)
    } else {
        None
    };
    let arch = if ua.contains("aarch64") || ua.contains("arm64") || ua.contains("armv8") {
        "aarch64"
    } else {
        "x86_64"
    };
    (os, arch)
}

/// `GET /add-machine[?os=linux]`
pub fn page(ctx: &Ctx, req: &Request, who: Option<Identity>) -> Handled {
    let who = require(who)?;
    render(ctx, req, &who, None)
}

/// The page; `new_code` is a code just made (for whom, the code), shown
/// this once.
fn render(ctx: &Ctx, req: &Request, who: &Identity, new_code: Option<(&str, &str)>) -> Handled {
    let (detected, arch) = detect(header(req, "User-Agent").unwrap_or(""));
    let chosen = crate::http::core::request::query_param(req, "os")
        .and_then(|o| Os::parse(&o))
        .or(detected);
    let builds = ctx.builds.newest_each();
    let server = ctx.peer().base_url(req);
    let code = new_code.map(|(_, c)| c);
    let offer = chosen.and_then(|os| {
        builds
            .iter()
            .find(|b| b.os == os && b.arch == arch)
            .or_else(|| builds.iter().find(|b| b.os == os))
    });
    let accounts = ctx.auth.accounts.current()?;
    let is_admin = who.role == crate::accounts::Role::Admin;
    let open = accounts.open_enrollments((!is_admin).then_some(who.user.as_str()));
    let users: Vec<&String> = accounts.users.keys().collect();
    let csrf = who.session.as_ref().map(|(_, c)| c.as_str());
    let content = html! {
        h1 { "Add a machine" }
        @if !ctx.builds.configured() || builds.is_empty() {
            p.error {
                "This server offers no client programs yet: its admin starts it with "
                code { "--clients-dir DIR" } " (the packages set it), DIR holding the files "
                code { "make dist" } " makes. Until then, build the client from source (see the README)."
            }
        }
        @match (chosen, offer) {
            (Some(os), Some(b)) => {
                p.detected { "For this " (os.title()) " machine (" (b.arch) "):" }
                (download_box(b))
                (steps(os, b, &server, code))
            }
            (Some(os), None) => {
                p.detected { "This server has no client for " (os.title()) " yet." }
                @if os == Os::Macos { (macos_from_source(&server, code)) }
            }
            (None, _) => {
                p.detected { "Choose your system below." }
            }
        }
        h2 { "Enrollment code" }
        @if let Some((user, code)) = new_code {
            p.code {
                "Code for a machine of " b { (user) } ", valid once for 24 hours; "
                "it is not shown again:" br;
                input id="enroll-code" readonly size="24" value=(code);
            }
            p { "On the machine, with the client downloaded:" }
            pre.commands { "nimbus-client enroll --server " (server) " " (code) "\n" }
        } @else {
            p {
                "A code lets a machine log in as "
                @if is_admin { "a user" } @else { "you" }
                " without typing a password on it: make one, and use it in the second command above."
            }
        }
        @if let Some(csrf) = csrf {
            form method="post" action="/add-machine/codes" class="inline" {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(os) = chosen { input type="hidden" name="os" value=(os.as_str()); }
                @if is_admin {
                    label { "for " select name="user" {
                        @for u in &users { option selected[**u == who.user] { (u) } }
                    } }
                    " "
                }
                button type="submit" { "Make an enrollment code" }
            }
        }
        @if !open.is_empty() {
            table.codes {
                thead { tr { th { "Id" } th { "For" } th { "Made by" } th { "Expires (UTC)" } th {} } }
                tbody { @for e in &open { (code_row(e, csrf)) } }
            }
        }
        h2 { "Other systems" }
        @if builds.is_empty() {
            p { "None." }
        } @else {
            table.builds {
                thead { tr { th { "System" } th { "File" } th { "Size" } th { "SHA-256" } th {} } }
                tbody { @for b in &builds {
                    tr {
                        td { (b.os.title()) " " (b.arch) }
                        td { a href={ "/clients/" (encode_segment(&b.file)) } download { (b.file) } }
                        td.n { (human_size(b.size)) }
                        td { code.sum { (b.sha256) } }
                        td { a href={ "/add-machine?os=" (b.os.as_str()) } { "commands" } }
                    }
                } }
            }
        }
        p { a href="/add-machine?os=macos" { "macOS" } ": build from source if no build is listed." }
    };
    Ok(user_page(who, "Add a machine · Nimbus", "", content).header("Cache-Control", "no-store"))
}

fn code_row(e: &Enrollment, csrf: Option<&str>) -> Markup {
    html! {
        tr {
            td { (e.id) }
            td { (e.user) }
            td { (e.created_by) }
            td { (format_utc(e.expires_at)) }
            td { @if let Some(csrf) = csrf {
                (post_button(&format!("/add-machine/codes/{}/revoke", encode_segment(&e.id)), csrf, "Withdraw"))
            } }
        }
    }
}

fn download_box(b: &ClientBuild) -> Markup {
    html! {
        p.download {
            a.button id="client-download" href={ "/clients/" (encode_segment(&b.file)) } download {
                "Download " (b.file)
            }
            " " (human_size(b.size)) br;
            "SHA-256 " code.sum id="client-sha256" { (b.sha256) }
        }
    }
}

/// The commands for one system, with the server's URL and, once made, the
/// code filled in.
fn steps(os: Os, b: &ClientBuild, server: &str, code: Option<&str>) -> Markup {
    let code = code.unwrap_or("CODE");
    let url = format!("{server}/clients/{}", b.file);
    let lines: Vec<String> = match os {
        Os::Windows => vec![
            format!(
                "mkdir \"%LOCALAPPDATA%\\Programs\\Nimbus\" & cd /d \"%LOCALAPPDATA%\\Programs\\Nimbus\" & curl.exe -fLo nimbus-client.exe {url}"
            ),
            format!("nimbus-client.exe enroll --server {server} {code}"),
            format!(
                "nimbus-client.exe install-service --server {server} --dir \"%USERPROFILE%\\Documents\""
            ),
        ],
        Os::Linux | Os::Macos => vec![
            format!(
                "mkdir -p ~/.local/bin && curl -fLo ~/.local/bin/nimbus-client {url} && chmod +x ~/.local/bin/nimbus-client"
            ),
            format!("~/.local/bin/nimbus-client enroll --server {server} {code}"),
            format!(
                "~/.local/bin/nimbus-client install-service --server {server} --dir ~/Documents"
            ),
        ],
    };
    let (shell, service) = match os {
        Os::Windows => (
            "In a Command Prompt (curl.exe comes with Windows 10 and 11), or save the download in that folder:",
            "The last command makes a Task Scheduler task that starts the backup at every logon and again if it stops.",
        ),
        Os::Linux => (
            "In a terminal:",
            "The last command installs a systemd user service (nimbus-client.service) that starts at login and restarts if it stops; loginctl enable-linger keeps it running while you are logged out.",
        ),
        Os::Macos => (
            "In Terminal:",
            "The last command installs a launchd agent that starts at login and restarts if it stops.",
        ),
    };
    html! {
        p { (shell) }
        pre.commands id="commands" { @for l in &lines { (l) "\n" } }
        p { (service) " Change " code { "--dir" } " to the folder to back up; "
            code { "nimbus-client status" } " shows what it is doing." }
    }
}

fn macos_from_source(server: &str, code: Option<&str>) -> Markup {
    let code = code.unwrap_or("CODE");
    html! {
        p { "Build it with Rust (rustup.rs) from a copy of the Nimbus source, then:" }
        pre.commands id="commands" {
            "cargo install --path client\n"
            "nimbus-client enroll --server " (server) " " (code) "\n"
            "nimbus-client install-service --server " (server) " --dir ~/Documents\n"
        }
    }
}

/// `POST /add-machine/codes`: a new code, shown once on the page.
pub fn create_code(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let user = form
        .get("user")
        .cloned()
        .unwrap_or_else(|| who.user.clone());
    let accounts = ctx.auth.accounts.current()?;
    if !accounts.may_enroll_for(&who.user, &user) {
        return Err(ApiError::Forbidden(
            "only admins make codes for other users' machines".into(),
        ));
    }
    let (e, code) = match ctx.auth.store().create_enrollment(&user, &who.user) {
        Ok(done) => done,
        Err(AccountError::NoSuchUser(_)) => return Err(ApiError::NotFound),
        Err(e @ AccountError::TooManyEnrollments) => {
            return Err(ApiError::bad("too_many_codes", e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    log::info!("{} made enrollment code {} for {user}", who.user, e.id);
    render(ctx, req, &who, Some((&user, &code)))
}

/// `POST /add-machine/codes/{id}/revoke`
pub fn revoke_code(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let only = (who.role != crate::accounts::Role::Admin).then_some(who.user.as_str());
    match ctx.auth.store().revoke_enrollment(id, only) {
        Ok(()) => Ok(Reply::new(303).header("Location", "/add-machine")),
        Err(AccountError::NoSuchEnrollment(_)) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_are_told_from_user_agents() {
        let cases = [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120",
                Some(Os::Windows),
                "x86_64",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120",
                Some(Os::Linux),
                "x86_64",
            ),
            (
                "Mozilla/5.0 (X11; Linux aarch64; rv:120.0) Gecko/20100101 Firefox/120.0",
                Some(Os::Linux),
                "aarch64",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Safari/605",
                Some(Os::Macos),
                "x86_64",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1",
                None,
                "x86_64",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14) Chrome/120 Mobile",
                None,
                "x86_64",
            ),
            ("curl/8.5.0", None, "x86_64"),
        ];
        for (ua, os, arch) in cases {
            assert_eq!(detect(ua), (os, arch), "{ua}");
        }
    }
}
