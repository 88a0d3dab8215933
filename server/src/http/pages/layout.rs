//! What every page shares: the document around its content (the one style
//! sheet and script, the CSP set by `Reply::html`), the header of a
//! logged-in user, and the small pieces pages repeat: a POST button,
//! times, sizes, links to a file's download and versions, the upload box.
//!
//! Every page is a maud template: values are HTML-escaped unless wrapped
//! in `PreEscaped`, which is used only for the constant style sheet.

use crate::accounts::Role;
use crate::http::auth::Identity;
use crate::http::core::{Body, Reply};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use nimbus_common::time::format_utc;

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
form.login input{display:block;width:100%;padding:.35rem}pre.commands{white-space:pre-wrap;word-break:break-all;background:var(--head);border:1px solid var(--line);border-radius:6px;padding:.6rem .8rem}code.sum{word-break:break-all}a.button{display:inline-block;padding:.4rem .9rem;border-radius:6px;background:var(--accent);color:#fff;text-decoration:none}\
@media (max-width:640px){main{padding:0 .7rem 1.5rem}header{padding:.6rem .7rem}\
form.search{margin-left:0;width:100%}form.search input{flex:1;min-width:0}\
table{display:block;overflow-x:auto;white-space:nowrap}th,td{padding:.35rem .45rem}}\
section.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(15rem,1fr));gap:.8rem;margin:.6rem 0 1rem}\
article.card{border:1px solid var(--line);border-left:6px solid var(--muted);border-radius:8px;padding:.6rem .8rem;background:var(--head)}\
article.card h2{margin:0 0 .3rem;font-size:1.1rem}article.card p{margin:.15rem 0}article.card .state{font-weight:600}\
article.ok{border-left-color:#2a7}article.ok .state{color:#2a7}article.behind{border-left-color:#1f6feb}article.behind .state{color:#1f6feb}\
article.stale{border-left-color:#b70}article.stale .state{color:#b70}article.errors{border-left-color:#c33}article.errors .state{color:#c33}\
article .doing,article .os{color:var(--muted);font-size:.9em}\
figure.timeline,figure.chart{margin:.4rem 0 1rem}figure.timeline svg,figure.chart svg{display:block;width:100%;max-width:40rem;height:auto}\
figure.timeline figcaption,figure.chart figcaption{color:var(--muted);font-size:.9em}\
svg.icon{width:1.15em;height:1.15em;vertical-align:-.22em;margin-right:.4em;color:var(--muted)}svg.i-folder{color:#bf8700}svg.i-image{color:#2da44e}\
svg.i-audio,svg.i-video{color:#8250df}svg.i-pdf{color:#cf222e}svg.i-code{color:#1f6feb}\
.key{margin-right:.8rem;white-space:nowrap}.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;vertical-align:middle}.swatch.free{background:var(--line)}\
p.empty{padding:1rem;border:1px dashed var(--line);border-radius:8px}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#9aa4b2;--line:#2f3642;--accent:#6ea8fe;--bg:#0f1217;--head:#171b22}\
button,input,select,textarea{background:#1c212a;color:var(--fg);border-color:var(--line)}.drop.over{background:#10243f}}";

/// The one script, embedded in the binary: local times, sorting, uploads.
const APP_JS: &str = include_str!("../assets/app.js");

/// The script's address: versioned by its content, so a browser may keep
/// it for good and an upgrade's pages name the new one.
pub static APP_JS_PATH: once_cell::sync::Lazy<String> = once_cell::sync::Lazy::new(|| {
    let hash = blake3::hash(APP_JS.as_bytes()).to_hex();
    format!("/assets/{}/app.js", &hash[..16])
});

/// `GET /assets/{VERSION}/app.js`: the script, kept a year, never
/// revalidated; any other version (a page from before an upgrade) or the
/// old unversioned `/assets/app.js` is sent to the current one.
pub fn app_js(version: Option<&str>) -> Reply {
    let current = APP_JS_PATH.as_str();
    match version {
        Some(v) if current == format!("/assets/{v}/app.js") => Reply::new(200)
            .header("Content-Type", "text/javascript; charset=utf-8")
            // Shared caches may keep it too (it is the same for
            // everyone); `public` is left out, as a response without
            // `Authorization` needs none (REDbot flags it).
            .header("Cache-Control", "max-age=31536000, immutable")
            .body(Body::Bytes(APP_JS.as_bytes().to_vec())),
        _ => Reply::new(302)
            .header("Location", current)
            .header("Cache-Control", "no-store"),
    }
}

/// A complete page: `header` (if any), then `content` in `<main>`.
pub fn page(status: u16, title: &str, header: Option<Markup>, content: Markup) -> Reply {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) }
                style { (PreEscaped(STYLE)) }
                script src=(APP_JS_PATH.as_str()) defer {}
            }
            body {
                @if let Some(header) = header { (header) }
                main { (content) }
            }
        }
    };
    Reply::html(status, doc.into_string() + "\n")
}

/// A page of a logged-in user: the header with the search box holding
/// `query`, then `content`.
pub fn user_page(who: &Identity, title: &str, query: &str, content: Markup) -> Reply {
    page(200, title, Some(top(who, query)), content)
}

/// The top of every page of a logged-in user: who, log out, admin link,
/// and the search box.
fn top(who: &Identity, query: &str) -> Markup {
    html! {
        header {
            a href="/" class="home" { "Nimbus backups" }
            " "
            span.who {
                "Logged in as " b { (who.user) }
                @if let Some((_, csrf)) = &who.session {
                    " " (post_button("/logout", csrf, "Log out"))
                }
                " " a href="/add-machine" { "Add a machine" }
                " " a href="/policy" { "Backup policy" }
                " " a href="/alerts" { "Alerts" }
                @if who.role == Role::Admin {
                    " " a href="/admin" { "All clients" }
                }
            }
            form method="get" action="/search" class="search" {
                input type="search" name="q" value=(query) placeholder="Find files by name (press /)" aria-label="Find files by name" aria-keyshortcuts="/";
                " "
                button type="submit" { "Search" }
            }
        }
        (super::icons::sprite())
    }
}

/// A one-button form that POSTs to `action` with the session's CSRF token.
pub fn post_button(action: &str, csrf: &str, label: &str) -> Markup {
    html! {
        form method="post" action=(action) class="inline" {
            input type="hidden" name="csrf" value=(csrf);
            button type="submit" { (label) }
        }
    }
}

/// A time for people: UTC in the text (the page works without scripts),
/// the exact instant in `datetime` for the page's script to show in the
/// viewer's local time, and the unix seconds on hover.
pub fn time(secs: i64) -> Markup {
    let utc = format_utc(secs);
    html! {
        time datetime=(utc) title={ (utc) " (" (secs) ")" } {
            (utc.replace('T', " ").replace('Z', " UTC"))
        }
    }
}

/// How long ago `secs` was, in words ("12 minutes ago"), the exact time
/// on hover (in the viewer's time zone once the script ran).
pub fn ago(secs: i64, now: i64) -> Markup {
    let d = (now - secs).max(0);
    let words = match d {
        0..=59 => "just now".to_string(),
        60..=3599 => plural(d / 60, "minute"),
        3600..=86_399 => plural(d / 3600, "hour"),
        _ => plural(d / 86_400, "day"),
    };
    let utc = format_utc(secs);
    html! { time.ago datetime=(utc) title=(utc) { (words) } }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit} ago")
    } else {
        format!("{n} {unit}s ago")
    }
}

/// A time, or "-" when there is none.
pub fn maybe_time(secs: Option<i64>) -> Markup {
    match secs {
        Some(t) => time(t),
        None => html! { "-" },
    }
}

/// A size cell: people's units, the exact bytes on hover.
pub fn size_cell(bytes: u64) -> Markup {
    html! { td.n title={ (bytes) " bytes" } { (human_size(bytes)) } }
}

pub use nimbus_common::wire::{
    download_route as download_href, versions_page_route as versions_href,
};

/// What to say where a user has nothing backed up yet.
pub fn nothing_yet() -> Markup {
    html! {
        p.empty {
            "Nothing is backed up yet. " a href="/add-machine" { "Add a machine" }
            ": download the client there and start it with two commands."
        }
    }
}

/// The restore form's "as zip / tar" choice.
pub fn format_select() -> Markup {
    html! {
        label { "as " select name="format" { option { "zip" } option { "tar" } } }
    }
}

/// The upload box of a page: into `machine`/`folder`, or, with no
/// machine, into one the user names (default `uploads`). The page's script
/// does the work; without it the box says so. Sessions only.
pub fn upload_panel(who: &Identity, machine: Option<&str>, folder: &str, max_bytes: u64) -> Markup {
    let Some((_, csrf)) = &who.session else {
        return html! {};
    };
    html! {
        section.upload data-csrf=(csrf) data-max=(max_bytes) {
            h2 { "Upload files" @if machine.is_some() { " into this folder" } }
            p.nojs { "Uploading from the browser needs JavaScript; everything else works without it." }
            div.drop hidden {
                @match machine {
                    Some(m) => {
                        input type="hidden" name="machine" value=(m);
                        input type="hidden" name="folder" value=(folder);
                    }
                    None => {
                        label { "Machine " input name="machine" value="uploads" size="12"; }
                        " "
                        label { "Folder " input name="folder" placeholder="(top)" size="16"; }
                    }
                }
                " "
                label.pick { "Choose files" input type="file" multiple; }
                span { "or drop them here. Large files go up in pieces and continue after a broken connection." }
            }
            ul.uploads {}
        }
    }
}

/// A count in words: "1 file", "12,345 files".
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.into();
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped} {}", if n == 1 { one } else { many })
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
    fn counts_read_as_words() {
        assert_eq!(count(1u64, "file", "files"), "1 file");
        assert_eq!(count(0u64, "file", "files"), "0 files");
        assert_eq!(count(1234567u64, "file", "files"), "1,234,567 files");
        assert_eq!(count(999u32, "file", "files"), "999 files");
    }

    #[test]
    fn values_are_escaped() {
        let html = post_button("/x?a=1&b=\"2\"", "<script>", "<b>'&'</b>").into_string();
        assert!(
            html.contains("action=\"/x?a=1&amp;b=&quot;2&quot;\""),
            "{html}"
        );
        assert!(html.contains("value=\"&lt;script&gt;\""), "{html}");
        assert!(html.contains(">&lt;b&gt;'&amp;'&lt;/b&gt;<"), "{html}");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
    }
}
