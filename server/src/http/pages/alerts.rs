//! The alerts page (`GET /alerts`): where alerts go, when a machine
//! counts as in trouble, what holds now and every notice sent or still
//! being retried. The admin sets the mail server and the thresholds and
//! sees everything; a user adds their own addresses and webhooks and sets
//! their machines' thresholds.

use super::layout::{count, maybe_time, time, user_page};
use crate::alerts::settings::{Security, Shape, Smtp};
use crate::alerts::{Editor, Span, Target};
use crate::http::auth::csrf::check_csrf;
use crate::http::auth::{require, Identity};
use crate::http::core::form::{read_form, Form};
use crate::http::core::request::query_param;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::http::views::status::clients;
use maud::html;
use nimbus_common::time::unix_now;
use tiny_http::Request;

fn back(anchor: &str) -> Reply {
    Reply::new(303).header("Location", format!("/alerts?saved=1#{anchor}"))
}

/// `GET /alerts[?saved=1]`
pub fn page(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let ed = who.editor();
    let admin = ed == Editor::Admin;
    let settings = ctx.alerts.view(ed);
    let st = ctx.alerts.state_for(ed);
    let csrf = who.session.as_ref().map(|(_, c)| c.as_str()).unwrap_or("");
    let machines: Vec<String> = clients(ctx)
        .into_iter()
        .filter(|c| admin || c.user == who.user)
        .map(|c| format!("{}/{}", c.user, c.machine))
        .collect();
    let target_name = |id: &str| {
        settings
            .targets
            .iter()
            .find(|t| t.id == id)
            .map(Target::describe)
            .unwrap_or_else(|| "a removed target".into())
    };
    let now = unix_now();
    let content = html! {
        h1 { "Alerts" }
        p {
            "The server tells you when a machine has had no successful backup for a while, reports errors pass after pass, "
            "when a check finds damage, and when its disk is nearly full: once when it starts, again each "
            (settings.repeat()) " while it lasts, and once when it is over."
        }
        @if query_param(req, "saved").is_some() { p.saved role="status" { "Saved." } }

        h2 id="targets" { "Where alerts go" }
        @if settings.targets.is_empty() { p { "Nowhere yet: add an address or a webhook." } }
        ul.targets {
            @for t in &settings.targets {
                li {
                    (t.describe())
                    @if admin { " · " (match &t.user { Some(u) => format!("{u}'s machines"), None => "every machine and the server".into() }) }
                    " "
                    form method="post" action={ "/alerts/targets/" (t.id) "/remove" } class="inline" {
                        input type="hidden" name="csrf" value=(csrf);
                        button type="submit" { "Remove" }
                    }
                }
            }
        }
        form method="post" action="/alerts/targets" id="target-form" {
            input type="hidden" name="csrf" value=(csrf);
            label for="t-email" { "Mail address" } " "
            input type="email" id="t-email" name="email" placeholder="you@example.org";
            " or " label for="t-webhook" { "webhook" } " "
            input type="url" id="t-webhook" name="webhook" placeholder="https://ntfy.sh/my-backups";
            " " label for="t-shape" { "as" } " "
            select id="t-shape" name="shape" {
                option value="generic" { "generic JSON" }
                option value="ntfy" { "ntfy" }
                option value="gotify" { "Gotify" }
            }
            " " label for="t-token" { "token (optional)" } " "
            input type="password" id="t-token" name="token" autocomplete="off";
            @if admin {
                " " label for="t-user" { "for" } " "
                input type="text" id="t-user" name="user" placeholder="every machine";
            }
            " " button type="submit" { "Add" }
        }
        form method="post" action="/alerts/test" id="test-form" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { "Send a test alert" }
        }

        @if admin {
            h2 id="smtp" { "Mail server" }
            @let smtp = settings.smtp.clone().unwrap_or_default();
            form method="post" action="/alerts/smtp" id="smtp-form" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="s-host" { "SMTP server" } " "
                    input type="text" id="s-host" name="host" value=(smtp.host) placeholder="smtp.example.org";
                    " " label for="s-port" { "port" } " "
                    input type="text" id="s-port" name="port" inputmode="numeric" value=(smtp.port.map(|p| p.to_string()).unwrap_or_default()) placeholder="587";
                    " " label for="s-security" { "security" } " "
                    select id="s-security" name="security" {
                        @for s in [Security::Starttls, Security::Tls, Security::None] {
                            option value=(s.as_str()) selected[smtp.security == s] { (s.as_str()) }
                        }
                    }
                }
                p {
                    label for="s-user" { "user name" } " "
                    input type="text" id="s-user" name="username" value=(smtp.username.clone().unwrap_or_default()) autocomplete="off";
                    " " label for="s-password" { "password" } " "
                    input type="password" id="s-password" name="password" value=(smtp.password.clone().unwrap_or_default()) autocomplete="new-password";
                    " " label for="s-from" { "sender" } " "
                    input type="text" id="s-from" name="from" value=(smtp.from) placeholder="Nimbus <nimbus@example.org>";
                }
                p {
                    label for="s-ca" { "Private CA certificate (PEM), for a relay whose certificate no public CA signed" }
                    br;
                    textarea id="s-ca" name="ca" rows="3" cols="64" { (smtp.ca.clone().unwrap_or_default()) }
                }
                small { "Leave the server empty to send no mail. The password is kept in the data directory (sealed when encryption at rest is on)." }
                br;
                button type="submit" { "Save" }
            }
            h2 id="when" { "When" }
            form method="post" action="/alerts/when" id="when-form" {
                input type="hidden" name="csrf" value=(csrf);
                p {
                    label for="w-stale" { "No successful backup for" } " "
                    input type="text" id="w-stale" name="stale_after" value=(settings.stale_after.map(|s| s.to_string()).unwrap_or_default()) placeholder="3d";
                    " " label for="w-failing" { "Errors in passes in a row" } " "
                    input type="text" id="w-failing" name="failing_passes" inputmode="numeric" value=(settings.failing_passes.map(|s| s.to_string()).unwrap_or_default()) placeholder="3";
                }
                p {
                    label for="w-disk" { "Disk free below (%)" } " "
                    input type="text" id="w-disk" name="disk_min_free_percent" inputmode="decimal" value=(settings.disk_min_free_percent.map(|s| s.to_string()).unwrap_or_default()) placeholder="5";
                    " " label for="w-repeat" { "Tell again after (0: never)" } " "
                    input type="text" id="w-repeat" name="repeat" value=(settings.repeat.map(|s| s.to_string()).unwrap_or_default()) placeholder="1d";
                }
                small { "Times as 3d, 12h, 30m or 45s. Empty: the default shown." }
                br;
                button type="submit" { "Save" }
            }
        }

        @if !machines.is_empty() {
            h2 id="machines" { "Each machine" }
            form method="post" action="/alerts/machines" id="machines-form" {
                input type="hidden" name="csrf" value=(csrf);
                table {
                    thead { tr { th { "Machine" } th { "Alert after no successful backup for" } } }
                    tbody {
                        @for m in &machines {
                            tr {
                                td { (m) }
                                td {
                                    input type="text" name={ "stale:" (m) } aria-label={ "stale threshold of " (m) }
                                        value=(settings.machines.get(m).and_then(|a| a.stale_after).map(|s| s.to_string()).unwrap_or_default())
                                        placeholder=(settings.stale_after(m).to_string());
                                }
                            }
                        }
                    }
                }
                button type="submit" { "Save" }
            }
        }

        h2 id="now" { "What holds now" }
        @if st.active.is_empty() { p.all-well { "Nothing: every machine is fine." } }
        ul.active {
            @for a in st.active.values() {
                li { b { (a.machine.as_deref().unwrap_or("server")) } ": " (a.detail) " · since " (time(a.since)) }
            }
        }

        h2 id="deliveries" { "Notices" }
        @if st.outbox.is_empty() { p { "None sent yet." } }
        @else {
            table.deliveries {
                thead { tr { th { "Made" } th { "To" } th { "Notice" } th { "State" } } }
                tbody {
                    @for d in st.outbox.iter().rev() {
                        tr class=(if d.gave_up { "failed" } else if d.pending() { "pending" } else { "sent" }) {
                            td { (time(d.created)) }
                            td { (target_name(&d.target)) }
                            td { (d.event.as_str()) ": " (d.title) }
                            td {
                                @if let Some(t) = d.sent_at { "sent " (time(t)) }
                                @else if d.gave_up { "failed, given up after " (d.attempts) " attempts" }
                                @else if d.attempts == 0 { "waiting" }
                                @else { "failed " (count(d.attempts, "time", "times")) ", next try " (maybe_time(Some(d.next_try.max(now)))) }
                                @if let Some(e) = &d.last_error { br; small.error { (e) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(user_page(who, "Alerts · Nimbus", "", content))
}

fn text(form: &Form, name: &str) -> Option<String> {
    form.get(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn span(form: &Form, name: &str) -> Result<Option<Span>, ApiError> {
    text(form, name)
        .map(|v| Span::parse(&v).map_err(|e| ApiError::bad("bad_alerts", format!("{name}: {e}"))))
        .transpose()
}

fn checked(req: &mut Request, who: Option<Identity>) -> Result<(Form, Identity), ApiError> {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    Ok((form, who))
}

/// `POST /alerts/targets`: `email` or `webhook` (with `shape`, `token`),
/// and for the admin `user`.
pub fn add_target(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let (form, who) = checked(req, who)?;
    let (email, webhook) = (text(&form, "email"), text(&form, "webhook"));
    let shape = match text(&form, "shape") {
        None => Shape::Generic,
        Some(s) => Shape::parse(&s)
            .ok_or_else(|| ApiError::bad("bad_target", "shape is generic, ntfy or gotify"))?,
    };
    let user = text(&form, "user");
    if let Some(u) = &user {
        if !ctx.auth.accounts.current()?.users.contains_key(u) {
            return Err(ApiError::bad(
                "bad_target",
                format!("there is no user {u:?}"),
            ));
        }
    }
    ctx.alerts.add_target(
        who.editor(),
        Target {
            id: String::new(),
            user,
            email,
            webhook,
            shape,
            token: text(&form, "token"),
        },
    )?;
    Ok(back("targets"))
}

/// `POST /alerts/targets/{id}/remove`
pub fn remove_target(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let (_, who) = checked(req, who)?;
    if !ctx.alerts.remove_target(who.editor(), id)? {
        return Err(ApiError::NotFound);
    }
    Ok(back("targets"))
}

/// `POST /alerts/test`
pub fn test(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let (_, who) = checked(req, who)?;
    ctx.alerts
        .test(who.editor(), unix_now())
        .map_err(ApiError::from)?;
    Ok(back("deliveries"))
}

/// `POST /alerts/smtp` (the admin's): empty `host` sends no mail.
pub fn save_smtp(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let (form, who) = checked(req, who)?;
    crate::http::auth::require_admin(&who)?;
    let smtp = match text(&form, "host") {
        None => None,
        Some(host) => Some(Smtp {
            host,
            port: text(&form, "port")
                .map(|p| {
                    p.parse()
                        .map_err(|_| ApiError::bad("bad_alerts", "smtp.port must be 1-65535"))
                })
                .transpose()?,
            security: text(&form, "security")
                .map(|s| {
                    Security::parse(&s).ok_or_else(|| {
                        ApiError::bad("bad_alerts", "security is starttls, tls or none")
                    })
                })
                .transpose()?
                .unwrap_or_default(),
            username: text(&form, "username"),
            // The page shows a stored password as REDACTED; sent back
            // unchanged, `replace` keeps the stored one.
            password: form.get("password").filter(|p| !p.is_empty()).cloned(),
            from: text(&form, "from").unwrap_or_default(),
            ca: text(&form, "ca"),
        }),
    };
    let mut next = ctx.alerts.view(Editor::Admin);
    next.smtp = smtp;
    ctx.alerts.replace(next)?;
    Ok(back("smtp"))
}

/// `POST /alerts/when` (the admin's): the thresholds.
pub fn save_when(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let (form, who) = checked(req, who)?;
    crate::http::auth::require_admin(&who)?;
    let mut next = ctx.alerts.view(Editor::Admin);
    next.stale_after = span(&form, "stale_after")?;
    next.repeat = span(&form, "repeat")?;
    next.failing_passes = text(&form, "failing_passes")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad("bad_alerts", "failing_passes must be a whole number"))
        })
        .transpose()?;
    next.disk_min_free_percent = text(&form, "disk_min_free_percent")
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad("bad_alerts", "disk_min_free_percent must be a number"))
        })
        .transpose()?;
    ctx.alerts.replace(next)?;
    Ok(back("when"))
}

/// `POST /alerts/machines`: `stale:USER/MACHINE` fields (empty: the
/// default).
pub fn save_machines(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let (form, who) = checked(req, who)?;
    let mut changes = Vec::new();
    for (name, _) in form.iter() {
        if let Some(machine) = name.strip_prefix("stale:") {
            changes.push((machine.to_string(), span(&form, name)?));
        }
    }
    for (machine, value) in changes {
        let current = ctx
            .alerts
            .settings()
            .machines
            .get(&machine)
            .and_then(|a| a.stale_after);
        if current != value {
            ctx.alerts.set_stale_after(who.editor(), &machine, value)?;
        }
    }
    Ok(back("machines"))
}
