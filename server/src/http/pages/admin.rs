//! `GET /admin`: what admins see. Every machine of every user with its
//! status (never contents: downloads stay the owner's), the server's
//! health, and invite links: `POST /admin/invites` makes one (shown once),
//! `POST /admin/invites/{id}/revoke` withdraws one; and which client
//! version each machine is offered (`POST /admin/updates`: pins and staged
//! rollouts, see `crate::updates`).

use super::charts::{disk_bar, line_chart, Series, STORAGE_DAYS};
use super::home::card;
use super::layout::{count, human_size, maybe_time, post_button, user_page};
use crate::accounts::AccountError;
use crate::http::auth::csrf::check_csrf;
use crate::http::auth::{require_admin, require_admin_session, Identity};
use crate::http::core::form::read_form;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::http::views::health::{health, Health};
use crate::http::views::status::{clients, ClientView, Status};
use maud::{html, Markup};
use nimbus_common::paths::encode_segment;
use nimbus_common::time::{format_utc, unix_now};
use tiny_http::Request;

/// How long an invite link stays valid.
pub const INVITE_TTL: i64 = 7 * 24 * 3600;

/// `GET /admin`
pub fn page(ctx: &Ctx, who: &Identity) -> Handled {
    page_with(ctx, who, None)
}

/// The admin page; `new_invite` is a link just made, shown this once.
fn page_with(ctx: &Ctx, who: &Identity, new_invite: Option<&str>) -> Handled {
    require_admin(who)?;
    let mut list = clients(ctx);
    // The troubled first: errors, then stale, then the rest, each by name.
    let rank = |s: Status| match s {
        Status::Errors => 0,
        Status::Stale => 1,
        _ => 2,
    };
    list.sort_by(|a, b| {
        (rank(a.status), &a.user, &a.machine).cmp(&(rank(b.status), &b.user, &b.machine))
    });
    let now = nimbus_common::time::unix_now();
    let longest_stale = list
        .iter()
        .filter(|c| c.status == Status::Stale)
        .filter_map(|c| c.last_contact)
        .min();
    let count_of = |s: Status| list.iter().filter(|c| c.status == s).count();
    let (stale, errors, browser) = (
        count_of(Status::Stale),
        count_of(Status::Errors),
        count_of(Status::Browser),
    );
    let invites = invites_section(ctx, who)?;
    let health = health(ctx);
    let updates = updates_section(ctx, who, &list)?;
    let content = html! {
        h1 { "Clients" }
        @if let Some(link) = new_invite {
            p.invite {
                "New invite link, valid for one account for 7 days; copy it now, it is not shown again:"
                br;
                input id="invite-link" readonly size="90" value=(link);
            }
        }
        p.summary {
            (count(list.len() as u64, "machine", "machines")) ": " (count_of(Status::Ok)) " backed up, " (stale) " stale"
            @if let Some(t) = longest_stale { " (the longest for " (human_duration(((now - t).max(0) as u64) / 60 * 60)) ")" }
            ", " (errors) " with errors"
            @if browser > 0 { "; " (browser) " with files uploaded from the browser only" }
            ". Stale means no contact for " (human_duration(ctx.stale_after)) "."
        }
        (alerts_line(ctx))
        @if list.is_empty() {
            p.empty { "No machine yet. " a href="/add-machine" { "Add one" } ": install the client on it and enroll it with a code." }
        } @else {
            section.cards aria-label="Every machine" {
                @for c in &list {
                    @let href = format!("/admin/tree/{}/{}/", encode_segment(&c.user), encode_segment(&c.machine));
                    (card(&href, &format!("{}/{}", c.user, c.machine), c.files, c.bytes, c.last_backup_at, Some(c), now))
                }
            }
        }
        (storage_charts(ctx, &health))
        h2 { "Every machine in detail" }
        table.clients {
            thead { tr {
                th { "Status" } th { "User" } th { "Machine" } th { "Client" } th { "Policy" }
                th { "Last contact (UTC)" } th { "Last file backed up" } th { "At (UTC)" }
                th { "Files" } th { "Size" } th { "Stored" } th { "Last error" }
            } }
            tbody { @for c in &list { (client_row(c)) } }
        }
        (updates)
        (health_section(&health))
        (invites)
    };
    Ok(user_page(who, "Clients · Nimbus", "", content))
}

fn client_row(c: &ClientView) -> Markup {
    let status = c.status.as_str();
    html! {
        tr class=(status) {
            td.status.(status) { (status) }
            td { (c.user) }
            td {
                @if c.files > 0 {
                    a href={ "/admin/tree/" (encode_segment(&c.user)) "/" (encode_segment(&c.machine)) "/" } { (c.machine) }
                } @else {
                    (c.machine)
                }
            }
            td {
                @match (&c.version, &c.os) {
                    (Some(v), Some(os)) => { (v) " on " (os) }
                    _ => "-",
                }
            }
            td.policy {
                @match &c.policy {
                    Some(p) if *p == c.policy_now => { code { (p) } }
                    Some(p) => { code { (p) } " (" code { (c.policy_now) } " at its next heartbeat)" }
                    None => "-",
                }
            }
            td { (maybe_time(c.last_contact)) }
            td { (c.last_file.as_deref().unwrap_or("-")) }
            td { (maybe_time(c.last_backup_at)) }
            td.n { (c.files) }
            td.n { (human_size(c.bytes)) }
            td.n { (human_size(c.stored)) }
            td.error {
                @match &c.last_error {
                    Some(e) if c.errors > 0 => { (count(c.errors, "error", "errors")) ": " (e) }
                    _ => "-",
                }
                @if c.ignored > 0 {
                    details.ignored {
                        summary { (c.ignored) " ignored" }
                        ul { @for p in c.problems.iter().filter(|p| p.ignored) { li { (p.path) ": " (p.message) } } }
                    }
                }
            }
        }
    }
}

/// The server's storage over time (from the daily history) and the data
/// disk now (from the health figures the page shows below).
fn storage_charts(ctx: &Ctx, h: &Health) -> Markup {
    let today = crate::history::day_of(unix_now());
    let days = ctx.history.server(today.saturating_sub(STORAGE_DAYS));
    let line = |label, colour, f: fn(&crate::history::ServerDay) -> u64| Series {
        label,
        colour,
        points: days.iter().map(|(d, s)| (*d, f(s))).collect(),
    };
    let series = [
        line("Stored on disk", "#1f6feb", |s| s.stored),
        line("Saved by packing", "#2da44e", |s| s.saved_by_packing()),
        line("Saved by dedup", "#bf8700", |s| s.saved_by_dedup()),
    ];
    html! {
        h2 { "Storage" }
        (line_chart(
            "server-storage",
            "The server's storage over time: stored on disk, saved by packing, saved by storing identical content once",
            "Noted once a day (the last figure of the day).",
            &series,
            today,
        ))
        @if let (Some(total), Some(free)) = (h.disk_total_bytes, h.disk_free_bytes) {
            (disk_bar(total, free, h.stored_bytes))
        }
    }
}

/// The health figures as a section of the admin page.
fn health_section(h: &Health) -> Markup {
    let size = |v: Option<u64>| v.map(human_size).unwrap_or_else(|| "-".into());
    html! {
        h2 { "Server" }
        table.health { tbody {
            tr { th { "Disk" } td { (size(h.disk_free_bytes)) " free of " (size(h.disk_total_bytes)) } }
            tr { th { "Stored" } td { (human_size(h.stored_bytes)) " on disk for " (human_size(h.current_files_bytes)) " of current files" } }
            tr { th { "Saved" } td { (human_size(h.saved_by_packing_bytes)) " by packing, " (human_size(h.saved_by_dedup_bytes)) " by storing identical content once" } }
            tr { th { "Contents" } td {
                (h.hot) " hot, " (h.packed) " packed"
                @if h.missing > 0 { ", " span.error { (h.missing) " missing" } }
            } }
            tr { th { "Requests" } td {
                (h.requests_last_minute) " in the last minute, " (h.errors_last_minute)
                " server errors; " (h.queue_depth) " waiting for a worker"
            } }
            tr { th { "Up" } td { (h.uptime_secs) " s" } }
        } }
    }
}

/// Open invites, a button to make one and one to withdraw each (forms need
/// a browser session: they carry its CSRF token).
fn invites_section(ctx: &Ctx, who: &Identity) -> Result<Markup, ApiError> {
    let accounts = ctx.auth.accounts.current()?;
    let now = unix_now();
    let open: Vec<_> = accounts.invites.iter().filter(|i| i.is_open(now)).collect();
    let csrf = who.session.as_ref().map(|(_, c)| c.as_str());
    Ok(html! {
        h2 { "Invites" }
        p {
            (count(open.len() as u64, "open invite link", "open invite links")) "."
            @if let Some(csrf) = csrf { " " (post_button("/admin/invites", csrf, "New invite link")) }
        }
        @if !open.is_empty() {
            table { thead { tr {
                th { "Invite" } th { "Made by" } th { "Made (UTC)" } th { "Expires (UTC)" } th {}
            } }
            tbody { @for i in &open {
                tr {
                    td { (i.id) }
                    td { (i.created_by) }
                    td { (format_utc(i.created_at)) }
                    td { (format_utc(i.expires_at)) }
                    td { @if let Some(csrf) = csrf {
                        (post_button(&format!("/admin/invites/{}/revoke", encode_segment(&i.id)), csrf, "Withdraw"))
                    } }
                }
            } } }
        }
    })
}

/// The update policy: one row for the fleet, one per user and one per
/// machine, each with what it is set to, what that makes the server offer,
/// and a form to change it.
fn updates_section(ctx: &Ctx, who: &Identity, list: &[ClientView]) -> Result<Markup, ApiError> {
    use crate::updates::Target;
    let policy = ctx.updates.policy();
    let builds = ctx.builds.list();
    let mut versions: Vec<&str> = builds.iter().map(|b| b.version.as_str()).collect();
    versions.sort_by(|a, b| crate::client_builds::compare_versions(b, a));
    versions.dedup();
    let users: Vec<String> = ctx.auth.accounts.current()?.users.keys().cloned().collect();
    let csrf = who.session.as_ref().map(|(_, c)| c.clone());
    let form = |scope: String, set: Option<&Target>, inherit: bool| -> Markup {
        let chosen = set.map(|t| t.as_str().to_string()).unwrap_or_default();
        html! {
            @if let Some(csrf) = &csrf {
                form method="post" action="/admin/updates" class="inline" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="scope" value=(scope);
                    select name="target" {
                        @if inherit { option value="inherit" selected[chosen.is_empty()] { "as above" } }
                        option value="latest" selected[chosen == "latest" || (!inherit && chosen.is_empty())] { "newest" }
                        option value="hold" selected[chosen == "hold"] { "no update" }
                        @for v in &versions { option value=(v) selected[chosen == *v] { (v) } }
                    }
                    button type="submit" { "Set" }
                }
            }
        }
    };
    let offered = |key: &str, c: &ClientView| -> String {
        let (target, from) = policy.target_for(key);
        let build =
            c.os.as_deref()
                .and_then(|os| os.split_once(' '))
                .and_then(|(os, arch)| Some((crate::client_builds::Os::parse(os)?, arch)))
                .and_then(|(os, arch)| ctx.builds.offered(os, arch, &target));
        let newer = match (&build, &c.version) {
            (Some(b), Some(v)) => {
                crate::client_builds::compare_versions(&b.version, v) == std::cmp::Ordering::Greater
            }
            _ => false,
        };
        let what = match (&build, newer) {
            (Some(b), true) => format!("{} (offered now)", b.version),
            (Some(_), false) | (None, _) if target == Target::Hold => "no update".into(),
            _ => "nothing newer".into(),
        };
        format!("{what}; {} set for the {from}", target.describe())
    };
    Ok(html! {
        h2 { "Client updates" }
        p {
            "Clients update themselves to the version offered here (signed builds only). "
            "For a staged rollout, set the fleet to the version it runs and chosen machines to the newest."
        }
        table.updates id="updates" {
            thead { tr { th { "Who" } th { "Runs" } th { "Offered" } th { "Setting" } } }
            tbody {
                tr {
                    td { "All machines" } td { "-" }
                    td { (policy.fleet.clone().unwrap_or(Target::Latest).describe()) }
                    td { (form("fleet".into(), policy.fleet.as_ref(), false)) }
                }
                @for u in &users {
                    tr {
                        td { "Machines of " (u) } td { "-" }
                        td { @match policy.users.get(u) { Some(t) => (t.describe()), None => "as the fleet" } }
                        td { (form(format!("user:{u}"), policy.users.get(u), true)) }
                    }
                }
                @for c in list.iter().filter(|c| c.version.is_some()) {
                    @let key = format!("{}/{}", c.user, c.machine);
                    tr data-machine=(key) {
                        td { (key) }
                        td.version { (c.version.as_deref().unwrap_or("-")) }
                        td.offered { (offered(&key, c)) }
                        td { (form(format!("machine:{key}"), policy.machines.get(&key), true)) }
                    }
                }
            }
        }
    })
}

/// `POST /admin/updates`: `scope` (`fleet`, `user:NAME`,
/// `machine:USER/MACHINE`) and `target` (`latest`, `hold`, a version, or
/// `inherit` to clear the scope's own setting).
pub fn set_update(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    use crate::updates::{Scope, Target};
    let form = read_form(req)?;
    let who = require_admin_session(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let scope = Scope::parse(field("scope")).ok_or_else(|| {
        ApiError::bad(
            "bad_scope",
            "scope is fleet, user:NAME or machine:USER/MACHINE",
        )
    })?;
    let target = match field("target") {
        "inherit" => None,
        t => Some(Target::parse(t).ok_or_else(|| {
            ApiError::bad("bad_target", "target is latest, hold, inherit or a version")
        })?),
    };
    ctx.updates
        .set(&scope, target.clone())
        .map_err(ApiError::from)?;
    log::info!(
        "{} set client updates for {:?} to {}",
        who.user,
        scope,
        target.as_ref().map_or("inherit", |t| t.as_str())
    );
    Ok(Reply::new(303).header("Location", "/admin#updates"))
}

/// "36 h", "2 d", "90 s": for the dashboard's wording.
fn human_duration(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 && s >= 86_400 * 2 => format!("{} days", s / 86_400),
        s if s % 3600 == 0 && s >= 3600 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `POST /admin/invites`: a new invite link, shown once on the admin page.
pub fn create_invite(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = require_admin_session(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let (invite, secret) = ctx.auth.store().create_invite(&who.user, INVITE_TTL)?;
    log::info!("{} made invite {}", who.user, invite.id);
    let link = format!("{}/register?invite={secret}", ctx.peer().base_url(req));
    page_with(ctx, &who, Some(&link))
}

/// `POST /admin/invites/{id}/revoke`
pub fn revoke_invite(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let form = read_form(req)?;
    let who = require_admin_session(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    match ctx.auth.store().revoke_invite(id) {
        Ok(()) => Ok(Reply::new(303).header("Location", "/admin")),
        Err(AccountError::NoSuchInvite(_)) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// What the alerts hold and whether their notices get through, with a
/// link to the alerts page.
fn alerts_line(ctx: &Ctx) -> maud::Markup {
    let st = ctx.alerts.state();
    let failing: Vec<&crate::alerts::Delivery> = st
        .outbox
        .iter()
        .filter(|d| d.sent_at.is_none() && d.attempts > 0)
        .collect();
    html! {
        p.alerts-summary {
            a href="/alerts" { "Alerts" } ": "
            @if st.active.is_empty() { "nothing holds now" }
            @else {
                (count(st.active.len() as u64, "condition holds", "conditions hold")) " now ("
                @for (i, a) in st.active.values().enumerate() {
                    @if i > 0 { ", " }
                    (a.condition.as_str()) " " (a.machine.as_deref().unwrap_or("server"))
                }
                ")"
            }
            @if ctx.alerts.settings().targets.is_empty() { "; no one is told: add where alerts go" }
            @if !failing.is_empty() {
                "; "
                strong.error { (count(failing.len() as u64, "notice", "notices")) " not delivered" }
                @if let Some(e) = failing.last().and_then(|d| d.last_error.as_deref()) { " (last error: " (e) ")" }
            }
            "."
        }
    }
}
