//! `GET /`: every backed-up file in one plain HTML table, usable without
//! JavaScript. Every name is HTML-escaped; links are percent-encoded.

use super::auth::Identity;
use super::reply::{ApiError, Reply};
use super::Ctx;
use crate::space::MachineKey;
use crate::store::catalog::BlobForm;
use nimbus_common::paths::{encode_path, encode_segment};
use nimbus_common::time::format_utc;
use std::fmt::Write;

/// The one style sheet, inline in every page (no request goes elsewhere).
const STYLE: &str = ":root{--fg:#1d2430;--muted:#5b6675;--line:#e3e7ee;--accent:#1f6feb;--bg:#fff;--head:#f6f8fb}\
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:var(--fg);background:var(--bg)}\
main{padding:0 1.5rem 2rem}\
header{display:flex;flex-wrap:wrap;gap:.6rem 1.2rem;align-items:center;padding:.7rem 1.5rem;background:var(--head);border-bottom:1px solid var(--line);margin-bottom:1rem}\
header .home{font-weight:700;color:var(--fg);text-decoration:none;font-size:1.1rem}header .who{color:var(--muted)}\
form.search{margin-left:auto;display:flex;gap:.4rem}form.search input{min-width:14rem;padding:.35rem .5rem;border:1px solid var(--line);border-radius:6px}\
h1{font-size:1.4rem;margin:.6rem 0}h2{font-size:1.15rem;margin:1.4rem 0 .5rem}\
table{border-collapse:collapse;width:100%}th,td{padding:.4rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\
th{background:var(--head);font-weight:600}th a{color:inherit}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
tr.folder td:first-child a{font-weight:600}nav.crumbs{margin:.4rem 0;color:var(--muted)}\
.packed{color:#2f7d4f}.missing{color:#c33}a{color:var(--accent)}.error{color:#c33}\
td.status{font-weight:600}td.ok{color:#2a7}td.stale{color:#b70}td.errors{color:#c33}td.browser{color:var(--muted)}\
[hidden]{display:none!important}\
section.upload{margin:1.4rem 0}.drop{border:2px dashed var(--line);border-radius:8px;padding:1rem;display:flex;flex-wrap:wrap;gap:.6rem;align-items:center}\
.drop.over{border-color:var(--accent);background:#f0f6ff}.drop span{color:var(--muted)}\
label.pick{padding:.3rem .7rem;border:1px solid var(--accent);border-radius:6px;color:var(--accent);cursor:pointer}label.pick input{display:none}\
ul.uploads{list-style:none;padding:0}ul.uploads li{display:grid;grid-template-columns:minmax(0,1fr) minmax(6rem,14rem);gap:.2rem .8rem;padding:.4rem 0;border-bottom:1px solid var(--line)}\
ul.uploads li .name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}ul.uploads li .msg{grid-column:1/-1;color:var(--muted);font-size:.9em}\
ul.uploads li.failed .msg{color:#c33}ul.uploads li.done .msg{color:#2a7}progress{width:100%}\
button{padding:.3rem .7rem;border:1px solid var(--line);border-radius:6px;background:#fff;cursor:pointer}\
form.bar{margin:.8rem 0;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}\
form.inline{display:inline;margin-left:.6rem}form.login{display:grid;gap:.6rem;max-width:20rem}\
form.login input{display:block;width:100%;padding:.35rem}\
@media (max-width:640px){main{padding:0 .7rem 1.5rem}header{padding:.6rem .7rem}\
form.search{margin-left:0;width:100%}form.search input{flex:1;min-width:0}\
table{display:block;overflow-x:auto;white-space:nowrap}th,td{padding:.35rem .45rem}}";

/// A complete page around `body`, with the shared style.
pub fn page_shell(title: &str, body: &str) -> String {
    // The page's own content goes in <main>, after the header if any.
    let (header, content) = match body.split_once("</header>") {
        Some((h, rest)) if body.starts_with("<header>") => (format!("{h}</header>"), rest),
        _ => (String::new(), body),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style><script src=\"/assets/app.js\" defer></script></head>\
         <body>{header}<main>{content}</main></body></html>\n",
        escape(title)
    )
}

/// The Content-Security-Policy of every page (set by `Reply::html`):
/// nothing from elsewhere, no inline script (only the server's own,
/// embedded `app.js`), and no framing by another site.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The one script, embedded in the binary: local times.
pub const APP_JS: &str = include_str!("assets/app.js");

/// The top of every page of a logged-in user: who, log out, admin link,
/// and the search box.
pub fn top(who: &Identity, query: &str) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<header><a href=\"/\" class=\"home\">Nimbus backups</a> <span class=\"who\">Logged in as <b>{}</b>",
        escape(&who.user)
    );
    if let Some((_, csrf)) = &who.session {
        html.push(' ');
        html.push_str(&post_button("/logout", csrf, "Log out"));
    }
    if who.role == crate::accounts::Role::Admin {
        html.push_str(" <a href=\"/admin\">All clients</a>");
    }
    let _ = write!(
        html,
        "</span><form method=\"get\" action=\"/search\" class=\"search\">\
         <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Find files by name\" aria-label=\"Find files by name\"> \
         <button type=\"submit\">Search</button></form></header>",
        escape(query)
    );
    html
}

/// `GET /`: the user's machines (each leading to its folders), the
/// restore form and the user's devices.
pub fn home(ctx: &Ctx, who: &Identity) -> Result<Reply, ApiError> {
    let space = who.space();
    let files = ctx.dm.tree(space.prefix(), None, false);
    let mut html = top(who, "");
    html.push_str("<h1>Your machines</h1>");
    if files.is_empty() {
        html.push_str("<p>Nothing is backed up yet. On a machine, run <code>nimbus-client login --server URL --user NAME</code>, then <code>nimbus-client --server URL --dir FOLDER</code>.</p>");
    } else {
        // (files, bytes, last backup) per machine, in name order.
        let mut machines: Vec<(&str, usize, u64, i64)> = Vec::new();
        for f in &files {
            let m = space.machine_of(&f.client).unwrap_or(&f.client);
            match machines.last_mut() {
                Some(last) if last.0 == m => {
                    last.1 += 1;
                    last.2 += f.version.size;
                    last.3 = last.3.max(f.version.backed_up_at);
                }
                _ => machines.push((m, 1, f.version.size, f.version.backed_up_at)),
            }
        }
        html.push_str(
            "<table class=\"machines\"><thead><tr><th>Machine</th><th>Files</th><th>Size</th>\
             <th>Last backup</th></tr></thead><tbody>",
        );
        for (m, count, bytes, last) in &machines {
            let _ = write!(
                html,
                "<tr><td><a href=\"{}\">{}</a></td><td class=\"n\">{count}</td>\
                 <td class=\"n\" title=\"{bytes} bytes\">{}</td><td>{}</td></tr>",
                escape(&format!("/browse/{}/", encode_segment(m))),
                escape(m),
                human_size(*bytes),
                time_html(*last),
            );
        }
        html.push_str("</tbody></table>");
        html.push_str("<p><a href=\"/files\">All files in one list</a>, also as they were at a past time.</p>");
        restore_form(&files, &space, "", &mut html);
    }
    html.push_str(&super::upload::panel(who, None, "", ctx.max_upload_bytes));
    devices_section(ctx, who, &mut html);
    Ok(Reply::html(200, page_shell("Nimbus backups", &html)))
}

/// A time for people: UTC in the text (the page works without scripts),
/// the exact instant in `datetime` for the page's script to show in the
/// viewer's local time, and the unix seconds on hover.
pub fn time_html(secs: i64) -> String {
    let utc = format_utc(secs);
    format!(
        "<time datetime=\"{utc}\" title=\"{utc} ({secs})\">{}</time>",
        utc.replace('T', " ").replace('Z', " UTC")
    )
}

/// `GET /files[?at=TIME][&deleted=1]`: every file of the user in one list,
/// now or as they were at TIME.
pub fn files_page(ctx: &Ctx, req: &tiny_http::Request, who: &Identity) -> Result<Reply, ApiError> {
    let space = who.space();
    let at = super::files::at_param(req)?;
    let show_deleted = matches!(
        super::router::query_param(req, "deleted").as_deref(),
        Some("1" | "on" | "true")
    );
    let files = ctx.dm.tree(space.prefix(), at, show_deleted);
    let mut html = top(who, "");
    html.reserve(files.len() * 256);
    let at_text = at.map(format_utc).unwrap_or_default();
    let _ = write!(
        html,
        "<h1>All files</h1><form method=\"get\" action=\"/files\" class=\"bar\">\
         <label>As they were at (UTC) <input name=\"at\" value=\"{}\" placeholder=\"2026-11-20T18:00:00Z\"></label> \
         <label><input type=\"checkbox\" name=\"deleted\" value=\"1\"{}> show deleted files</label> \
         <button type=\"submit\">Show</button></form>",
        escape(&at_text),
        if show_deleted { " checked" } else { "" }
    );
    restore_form(&files, &space, &at_text, &mut html);
    let _ = write!(
        html,
        "<p>{} file(s){}</p>",
        files.len(),
        at.map(|t| format!(" as they were at {}", format_utc(t)))
            .unwrap_or_default()
    );
    if files.is_empty() {
        html.push_str("<p>Nothing is backed up yet. On a machine, run <code>nimbus-client login --server URL --user NAME</code>, then <code>nimbus-client --server URL --dir FOLDER</code>.</p>");
    } else {
        html.push_str(
            "<table><thead><tr><th>Machine</th><th>Path</th><th>Size</th>\
             <th>Backed up (UTC)</th><th>Storage</th><th>History</th></tr></thead><tbody>",
        );
        for f in &files {
            let machine = space.machine_of(&f.client).unwrap_or(&f.client);
            let (m, p) = (encode_segment(machine), encode_path(&f.path));
            let href = match at {
                None => format!("/download/{m}/{p}"),
                Some(_) => format!("/download/{m}/{p}?version={}", f.version.n),
            };
            let history = format!(
                "<a href=\"{}\">{} version(s)</a>",
                escape(&format!("/versions/{m}/{p}")),
                f.versions
            );
            let (class, state) = match f.form {
                _ if f.version.deleted => ("", "-"),
                BlobForm::Hot => ("hot", "hot"),
                BlobForm::Packed => ("packed", "packed"),
                BlobForm::Missing => ("missing", "missing"),
            };
            let name = if f.version.deleted {
                format!("<s>{}</s> (deleted)", escape(&f.path))
            } else {
                format!("<a href=\"{}\">{}</a>", escape(&href), escape(&f.path))
            };
            let _ = write!(
                html,
                "<tr><td>{}</td><td>{name}</td><td class=\"n\" title=\"{} bytes\">{}</td>\
                 <td>{}</td><td class=\"{class}\">{state}</td><td>{history}</td></tr>",
                escape(machine),
                f.version.size,
                human_size(f.version.size),
                time_html(f.version.backed_up_at),
            );
        }
        html.push_str("</tbody></table>");
    }
    Ok(Reply::html(200, page_shell("Nimbus backups", &html)))
}

/// "Download a machine or folder as it was": a form for `/archive`.
fn restore_form(
    files: &[crate::store::catalog::Latest],
    space: &crate::space::UserSpace,
    at: &str,
    html: &mut String,
) {
    let mut machines: Vec<&str> = files
        .iter()
        .map(|f| space.machine_of(&f.client).unwrap_or(&f.client))
        .collect();
    machines.dedup();
    if machines.is_empty() {
        return;
    }
    let options: String = machines
        .iter()
        .map(|m| format!("<option>{}</option>", escape(m)))
        .collect();
    let _ = write!(
        html,
        "<form method=\"get\" action=\"/archive\" class=\"bar\"><b>Restore</b> \
         <label>machine <select name=\"machine\">{options}</select></label> \
         <label>folder <input name=\"path\" placeholder=\"everything\"></label> \
         <label>as at (UTC) <input name=\"at\" value=\"{}\" placeholder=\"now\"></label> \
         <label>as <select name=\"format\"><option>zip</option><option>tar</option></select></label> \
         <button type=\"submit\">Download</button></form>",
        escape(at)
    );
}

/// The user's machines (devices with a live token), each with a button to
/// revoke it; revoked ones are only counted.
fn devices_section(ctx: &Ctx, who: &Identity, html: &mut String) {
    let Ok(accounts) = ctx.accounts.current() else {
        html.push_str("<p class=\"error\">Your machines cannot be listed right now.</p>");
        return;
    };
    let mine: Vec<_> = accounts
        .devices
        .iter()
        .filter(|d| d.user == who.user)
        .collect();
    let live: Vec<_> = mine.iter().filter(|d| !d.revoked).collect();
    let _ = write!(
        html,
        "<h2>Devices</h2><p>{} logged in, {} revoked or replaced.</p>",
        live.len(),
        mine.len() - live.len()
    );
    if live.is_empty() {
        return;
    }
    html.push_str(
        "<table class=\"devices\"><thead><tr><th>Machine</th><th>Device</th><th>Logged in (UTC)</th>\
         <th>Last contact (UTC)</th><th></th></tr></thead><tbody>",
    );
    for d in live {
        let last = ctx
            .clients
            .get(MachineKey::new(&d.user, &d.machine).as_str())
            .and_then(|c| c.last_contact)
            .map(format_utc)
            .unwrap_or_else(|| "-".into());
        let button = who
            .session
            .as_ref()
            .map(|(_, csrf)| post_button(&format!("/devices/{}/revoke", d.id), csrf, "Revoke"))
            .unwrap_or_default();
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{last}</td><td>{button}</td></tr>",
            escape(&d.machine),
            escape(&d.id),
            format_utc(d.created_at),
        );
    }
    html.push_str("</tbody></table>");
}

/// A one-button form that POSTs to `action` with the session's CSRF token.
pub fn post_button(action: &str, csrf: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">{}</button></form>",
        escape(action),
        escape(csrf),
        escape(label)
    )
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert(\"x\")</script>&'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }
}
