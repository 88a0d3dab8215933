//! The backup policy page (`GET /policy?scope=...`, `POST /policy`): the
//! settings of one layer (the fleet's, a user's, a machine's) as a form,
//! what the layer below gives where it sets nothing, the admin's locks, and
//! what a machine applies in the end. The admin edits every layer; a user
//! edits their own and their machines', except locked fields.

use super::layout::user_page;
use crate::http::auth::csrf::check_csrf;
use crate::http::auth::{require, Identity};
use crate::http::core::form::{read_form, Form};
use crate::http::core::request::query_param;
use crate::http::core::{ApiError, Handled, Reply};
use crate::http::ctx::Ctx;
use crate::http::views::status::clients;
use crate::policies::{Editor, Stored};
use crate::updates::Scope;
use maud::{html, Markup};
use nimbus_common::policy::{Folder, RateWindow, Settings, Window, FIELDS, OSES};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use std::collections::{BTreeMap, BTreeSet};
use tiny_http::Request;

fn is_admin(who: &Identity) -> bool {
    who.role == crate::accounts::Role::Admin
}

fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::Fleet => "fleet".into(),
        Scope::User(u) => format!("user:{u}"),
        Scope::Machine(m) => format!("machine:{m}"),
    }
}

fn scope_name(scope: &Scope) -> String {
    match scope {
        Scope::Fleet => "All machines".into(),
        Scope::User(u) => format!("Machines of {u}"),
        Scope::Machine(m) => m.clone(),
    }
}

/// The scopes `who` may see and edit here.
fn scopes(ctx: &Ctx, who: &Identity) -> Result<Vec<Scope>, ApiError> {
    let machines: Vec<String> = clients(ctx)
        .into_iter()
        .filter(|c| is_admin(who) || c.user == who.user)
        .map(|c| format!("{}/{}", c.user, c.machine))
        .collect();
    let mut out = Vec::new();
    if is_admin(who) {
        out.push(Scope::Fleet);
        for u in ctx.auth.accounts.current()?.users.keys() {
            out.push(Scope::User(u.clone()));
        }
    } else {
        out.push(Scope::User(who.user.clone()));
    }
    out.extend(machines.into_iter().map(Scope::Machine));
    Ok(out)
}

fn chosen_scope(ctx: &Ctx, who: &Identity, text: Option<&str>) -> Result<Scope, ApiError> {
    let scope = match text {
        Some(t) => Scope::parse(t).ok_or_else(|| {
            ApiError::bad(
                "bad_scope",
                "scope is fleet, user:NAME or machine:USER/MACHINE",
            )
        })?,
        None if is_admin(who) => Scope::Fleet,
        None => Scope::User(who.user.clone()),
    };
    if !is_admin(who) && !crate::policies::owns(&who.user, &scope) {
        return Err(ApiError::Forbidden(
            "only the admin sees the policy of the fleet or of other users' machines".into(),
        ));
    }
    let _ = ctx;
    Ok(scope)
}

/// `GET /policy[?scope=SCOPE][&saved=1]`
pub fn page(ctx: &Ctx, req: &Request, who: &Identity) -> Handled {
    let scope = chosen_scope(ctx, who, query_param(req, "scope").as_deref())?;
    let stored = ctx.policies.current()?;
    let saved = query_param(req, "saved").is_some();
    let content = html! {
        h1 { "Backup policy" }
        p {
            "Every client fetches its policy with each heartbeat and applies it without restarting. "
            "A field left empty takes the value from the layer below (machine, then user, then all machines); "
            "exclusions add up. Locked fields are the admin's alone."
        }
        nav.scopes {
            @for s in scopes(ctx, who)? {
                @let text = scope_text(&s);
                @if s == scope { b { (scope_name(&s)) } } @else {
                    a href={ "/policy?scope=" (utf8_percent_encode(&text, NON_ALPHANUMERIC)) } { (scope_name(&s)) }
                }
                " "
            }
        }
        @if saved { p.saved role="status" { "Saved. Clients apply it at their next heartbeat." } }
        (form(who, &scope, &stored))
        (ignored_section(who, &scope, &stored))
        @if let Scope::Machine(m) = &scope {
            (effective(&stored, m, ctx))
        }
    };
    Ok(user_page(who, "Backup policy · Nimbus", "", content))
}

fn form(who: &Identity, scope: &Scope, stored: &Stored) -> Markup {
    let own = stored.layer(scope);
    let below = stored.fleet_with_defaults();
    let locked = |f: &str| stored.locked.contains(f);
    let editable = |f: &str| is_admin(who) || !locked(f);
    let fleet = *scope == Scope::Fleet;
    let show_f64 = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let show_u64 = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    let lines = |v: &Option<Vec<String>>| v.as_ref().map(|l| l.join("\n")).unwrap_or_default();
    let windows = |v: &Option<Vec<Window>>| {
        v.as_ref()
            .map(|l| {
                l.iter()
                    .map(Window::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    let limits = |v: &Option<Vec<RateWindow>>| {
        v.as_ref()
            .map(|l| {
                l.iter()
                    .map(|r| format!("{} {}", r.when, r.rate))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    let lock_box = |f: &str| -> Markup {
        html! {
            @if fleet && is_admin(who) {
                label.lock { input type="checkbox" name={ "lock_" (f) } checked[locked(f)]; " locked" }
            } @else if locked(f) {
                span.locked { " locked by the admin" }
            }
        }
    };
    let hint = |text: String| -> Markup {
        html! { @if !fleet && !text.is_empty() { span.below { "below: " (text) } } }
    };
    let number = |name: &str, label: &str, value: String, below_text: String| -> Markup {
        html! {
            p {
                label for=(name) { (label) }
                " "
                input type="text" id=(name) name=(name) value=(value) disabled[!editable(name)] inputmode="decimal";
                " " (hint(below_text)) (lock_box(name))
            }
        }
    };
    let text_area = |name: &str, label: &str, help: &str, value: String| -> Markup {
        html! {
            p {
                label for=(name) { (label) } " " (lock_box(name.split('.').next().unwrap_or(name)))
                br;
                textarea id=(name) name=(name) rows="5" cols="50" disabled[!editable(name.split('.').next().unwrap_or(name))] { (value) }
                br;
                small { (help) }
            }
        }
    };
    html! {
        h2 { (scope_name(scope)) }
        form method="post" action="/policy" id="policy-form" {
            @if let Some((_, csrf)) = &who.session { input type="hidden" name="csrf" value=(csrf); }
            input type="hidden" name="scope" value=(scope_text(scope));
            (text_area("folders", "Folders besides the client's own (--dir)", "One per line: PATH, or NAME = PATH, and | PATTERN, PATTERN for exclusions of that folder alone: ~/Documents, Photos = D:\\Photos | *.tmp, cache/. Each is backed up under its name at the top of the machine's files.", own.folders.as_ref().map(|l| l.iter().map(Folder::to_line).collect::<Vec<_>>().join("\n")).unwrap_or_default()))
            (number("interval", "Seconds between passes", show_f64(own.interval), show_f64(below.interval)))
            (number("settle", "Seconds a file must stay unchanged before it is sent", show_f64(own.settle), show_f64(below.settle)))
            (number("max_file_size", "Largest file backed up, in bytes (0: no limit)", show_u64(own.max_file_size), show_u64(below.max_file_size)))
            (number("upload_limit", "Upload limit in bytes per second (0: none)", show_u64(own.upload_limit), show_u64(below.upload_limit)))
            (text_area("limits", "Upload limits inside windows", "One per line: DAYS HH:MM-HH:MM BYTES_PER_SECOND, e.g. mon-fri 08:00-18:00 1000000 (0: unlimited).", limits(&own.limits)))
            (text_area("windows", "Backup windows (local time of each machine)", "One per line, e.g. mon-fri 19:00-07:00 or weekends 00:00-24:00. None: at any time. Outside them files are scanned, not sent.", windows(&own.windows)))
            (text_area("excludes", "Exclusions", "One gitignore pattern per line, relative to the backed-up folder: *.iso, Downloads/, /scratch. .nimbusignore files in folders count too.", lines(if fleet { &below.excludes } else { &own.excludes })))
            @for os in OSES {
                @let field = format!("os_excludes.{os}");
                @let value = if fleet { below.os_excludes.as_ref() } else { own.os_excludes.as_ref() }
                    .and_then(|m| m.get(os)).map(|l| l.join("\n")).unwrap_or_default();
                (text_area(&field, &format!("Exclusions on {os} only"), if fleet { "Set by default: caches, temporary files and recycle bins." } else { "Added to what all machines leave out on this system." }, value))
            }
            button type="submit" { "Save" }
        }
    }
}

fn effective(stored: &Stored, machine: &str, ctx: &Ctx) -> Markup {
    let e = stored.effective(machine);
    let applied = clients(ctx)
        .into_iter()
        .find(|c| format!("{}/{}", c.user, c.machine) == machine)
        .and_then(|c| c.policy);
    html! {
        h2 { "What " (machine) " applies" }
        p id="applied" {
            "Policy " code { (e.version) } "; the machine "
            @match &applied {
                Some(a) if *a == e.version => "applies it.",
                Some(a) => { "applies " code { (a) } " until its next heartbeat." }
                None => "has not reported a policy yet.",
            }
        }
        pre.effective { (serde_json::to_string_pretty(&e).unwrap_or_default()) }
    }
}

/// `POST /policy`: the form of [`page`]; 303 back to it.
pub fn save(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let scope = chosen_scope(ctx, &who, form.get("scope").map(String::as_str))?;
    let before = ctx.policies.current()?;
    let mut settings = settings_of(&form)?;
    // Fields a user may not change are kept as they are (the form shows
    // them disabled, so a browser does not send them).
    let editor = if is_admin(&who) {
        Editor::Admin
    } else {
        let old = before.layer(&scope);
        for f in FIELDS.iter().filter(|f| before.locked.contains(**f)) {
            settings.take_field(&old, f);
        }
        Editor::User(&who.user)
    };
    ctx.policies.set_layer(editor, &scope, settings)?;
    if is_admin(&who) && scope == Scope::Fleet {
        let locked: BTreeSet<String> = FIELDS
            .iter()
            .filter(|f| form.contains_key(&format!("lock_{f}")))
            .map(|f| f.to_string())
            .collect();
        ctx.policies.set_locked(locked)?;
    }
    log::info!("{} changed the backup policy of {scope:?}", who.user);
    let text = scope_text(&scope);
    Ok(Reply::new(303).header(
        "Location",
        format!(
            "/policy?scope={}&saved=1",
            utf8_percent_encode(&text, NON_ALPHANUMERIC)
        ),
    ))
}

/// The settings a form gives (an empty field is unset).
fn settings_of(form: &Form) -> Result<Settings, ApiError> {
    let field = |name: &str| form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let bad = |name: &str, why: String| ApiError::bad("bad_policy", format!("{name}: {why}"));
    let f64_of = |name: &str| -> Result<Option<f64>, ApiError> {
        field(name)
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|_| bad(name, format!("{v:?} is not a number")))
            })
            .transpose()
    };
    let u64_of = |name: &str| -> Result<Option<u64>, ApiError> {
        field(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(name, format!("{v:?} is not a whole number")))
            })
            .transpose()
    };
    let lines = |name: &str| -> Option<Vec<String>> {
        field(name).map(|v| {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
    };
    let folders = lines("folders")
        .map(|l| {
            l.iter()
                .map(|f| Folder::parse_line(f).map_err(|e| ApiError::bad("bad_policy", e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let windows = lines("windows")
        .map(|l| {
            l.iter()
                .map(|w| Window::parse(w).map_err(|e| bad("windows", e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let limits = lines("limits")
        .map(|l| {
            l.iter()
                .map(|line| {
                    let (when, rate) = line.rsplit_once(' ').ok_or_else(|| {
                        bad("limits", format!("{line:?} is not WINDOW BYTES_PER_SECOND"))
                    })?;
                    Ok(RateWindow {
                        when: Window::parse(when).map_err(|e| bad("limits", e))?,
                        rate: rate.parse().map_err(|_| {
                            bad("limits", format!("{rate:?} is not a whole number"))
                        })?,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .transpose()?;
    let mut os_excludes = BTreeMap::new();
    for os in OSES {
        if let Some(l) = lines(&format!("os_excludes.{os}")) {
            os_excludes.insert(os.to_string(), l);
        }
    }
    let s = Settings {
        folders,
        interval: f64_of("interval")?,
        settle: f64_of("settle")?,
        max_file_size: u64_of("max_file_size")?,
        excludes: lines("excludes"),
        os_excludes: (!os_excludes.is_empty()).then_some(os_excludes),
        windows,
        upload_limit: u64_of("upload_limit")?,
        limits,
    };
    s.validate().map_err(|e| ApiError::bad("bad_policy", e))?;
    Ok(s)
}

/// The ignore rules of a scope (every machine's for the fleet, a
/// machine's own), with their remove buttons and the form to add one.
fn ignored_section(who: &Identity, scope: &Scope, stored: &Stored) -> Markup {
    let machine = match scope {
        Scope::Fleet => None,
        Scope::Machine(m) => Some(m.clone()),
        Scope::User(_) => return html! {},
    };
    let csrf = who.session.as_ref().map(|(_, c)| c.as_str()).unwrap_or("");
    let may_add = machine.is_some() || is_admin(who);
    html! {
        h2 id="ignored" { "Ignored errors" }
        p {
            "Errors matching a rule do not turn a machine's status to errors; the dashboard still lists them, counted apart. "
            "The path pattern covers the whole path (" code { "*" } " any run of characters, " code { "?" } " one); "
            "the message, if given, must appear in the error."
        }
        ul.ignored-rules {
            @for r in stored.ignored_errors.iter().filter(|r| r.machine == machine) {
                li {
                    code { (r.path) }
                    @if let Some(m) = &r.message { " with “" (m) "”" }
                    " "
                    @if may_add {
                        form method="post" action={ "/policy/ignored/" (r.id()) "/remove" } class="inline" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="scope" value=(scope_text(scope));
                            button type="submit" { "Remove" }
                        }
                    }
                }
            }
        }
        @if may_add {
            form method="post" action="/policy/ignored" id="ignore-form" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="scope" value=(scope_text(scope));
                label for="ignore-path" { "Path pattern" } " "
                input type="text" id="ignore-path" name="path" placeholder="*.ost" required;
                " " label for="ignore-message" { "Message contains (optional)" } " "
                input type="text" id="ignore-message" name="message" placeholder="used by another process";
                " " button type="submit" { "Ignore" }
            }
        }
    }
}

fn back_to(scope: &Scope) -> Reply {
    let text = scope_text(scope);
    Reply::new(303).header(
        "Location",
        format!(
            "/policy?scope={}#ignored",
            utf8_percent_encode(&text, NON_ALPHANUMERIC)
        ),
    )
}

/// `POST /policy/ignored`: `scope` (`fleet` or `machine:...`), `path`,
/// optional `message`.
pub fn add_ignored(ctx: &Ctx, req: &mut Request, who: Option<Identity>) -> Handled {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let scope = chosen_scope(ctx, &who, form.get("scope").map(String::as_str))?;
    let machine = match &scope {
        Scope::Fleet => None,
        Scope::Machine(m) => Some(m.clone()),
        Scope::User(_) => {
            return Err(ApiError::bad(
                "bad_scope",
                "errors are ignored for a machine or for every machine",
            ))
        }
    };
    let text = |name: &str| {
        form.get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let rule = crate::policies::IgnoreRule {
        machine,
        path: text("path").ok_or_else(|| ApiError::bad("bad_rule", "a path pattern is needed"))?,
        message: text("message"),
    };
    ctx.policies.add_ignore(who.editor(), rule)?;
    Ok(back_to(&scope))
}

/// `POST /policy/ignored/{id}/remove`
pub fn remove_ignored(ctx: &Ctx, req: &mut Request, who: Option<Identity>, id: &str) -> Handled {
    let form = read_form(req)?;
    let who = require(who)?;
    check_csrf(&who, form.get("csrf").map(String::as_str))?;
    let scope = chosen_scope(ctx, &who, form.get("scope").map(String::as_str))?;
    if !ctx.policies.remove_ignore(who.editor(), id)? {
        return Err(ApiError::NotFound);
    }
    Ok(back_to(&scope))
}
