//! `GET /versions/{machine}/{path}`: a file's versions on a page, each
//! downloadable, and a preview of the latest for kinds a browser shows
//! without running anything (`/preview/...`): text inline (the first 64
//! KiB, escaped), images, audio and video in their elements, PDF by link.

use super::browse::crumbs;
use super::charts::{timeline, Timeline};
use super::layout::{download_href, human_size, user_page};
use crate::history::day_of;
use crate::http::auth::Identity;
use crate::http::core::preview::{preview_kind, Preview};
use crate::http::core::{ApiError, Handled};
use crate::http::ctx::Ctx;
use crate::space::FileTarget;
use maud::{html, Markup};
use nimbus_common::time::format_utc;
use std::io::Read;

pub fn versions_page(ctx: &Ctx, who: &Identity, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let machine = key.machine();
    let versions = ctx
        .dm
        .versions(key.as_str(), &path)
        .ok_or(ApiError::NotFound)?;
    let (folder, name) = path.rsplit_once('/').unwrap_or(("", &path));
    // Per day: how many versions, their bytes, and the day's last one.
    let mut per_day: std::collections::BTreeMap<u32, (u32, u64, u64)> = Default::default();
    for v in versions.iter().filter(|v| !v.deleted) {
        let e = per_day.entry(day_of(v.backed_up_at)).or_default();
        *e = (e.0 + 1, e.1 + v.size, e.2.max(v.n));
    }
    let days: Vec<(u32, u32, u64)> = per_day.iter().map(|(d, e)| (*d, e.0, e.1)).collect();
    let link = |d: u32| format!("#v{}", per_day.get(&d).map_or(0, |e| e.2));
    let content = html! {
        (crumbs("/browse", machine, folder, name))
        h1 { (path) }
        p { "On " b { (machine) } "." }
        (preview(ctx, key.as_str(), machine, &path, name))
        (timeline(&Timeline {
            id: "timeline",
            title: format!("Versions of {name} per day"),
            caption: "Versions per day, with their sizes. A bar leads to the day's last version.",
            days: &days,
            today: day_of(nimbus_common::time::unix_now()),
            link: &link,
            chosen: None,
        }))
        table.versions {
            thead { tr {
                th { "Version" } th { "Recorded (UTC)" } th { "Modified (UTC)" }
                th { "Size" } th { "Content" }
            } }
            tbody {
                @for v in versions.iter().rev() {
                    tr id={ "v" (v.n) } {
                        td.n { (v.n) }
                        td { (format_utc(v.backed_up_at)) }
                        @if v.deleted {
                            td { "-" } td.n { "-" } td { "deleted" }
                        } @else {
                            td { (format_utc(v.mtime)) }
                            td.n { (human_size(v.size)) }
                            td { a href=(download_href(machine, &path, Some(v.n))) { "download" } }
                        }
                    }
                }
            }
        }
    };
    Ok(user_page(who, &format!("{path} · Nimbus"), "", content))
}

/// The most of a text file shown on its page.
const TEXT_PREVIEW: u64 = 64 * 1024;

fn preview(ctx: &Ctx, key: &str, machine: &str, path: &str, name: &str) -> Markup {
    let (Some(kind), Some(latest)) = (preview_kind(name), ctx.dm.latest(key, path)) else {
        return html! {};
    };
    if latest.version.deleted {
        return html! {};
    }
    let href =
        download_href(machine, path, Some(latest.version.n)).replacen("/download/", "/preview/", 1);
    html! {
        section.preview aria-label="Preview" {
            @match kind {
                Preview::Text => {
                    @let len = latest.version.size.min(TEXT_PREVIEW);
                    @let text = ctx.dm.open_blob(&latest.version.hash, 0, len).ok().and_then(|(r, _)| {
                        let mut buf = Vec::new();
                        r.take(len).read_to_end(&mut buf).ok().map(|_| String::from_utf8_lossy(&buf).into_owned())
                    });
                    @if let Some(text) = text {
                        pre.text-preview { (text) }
                        @if latest.version.size > TEXT_PREVIEW { p { small { "The first " (human_size(TEXT_PREVIEW)) " of " (human_size(latest.version.size)) "." } } }
                    }
                }
                Preview::Image(_) => { img.image-preview src=(href) alt={ "Preview of " (name) } style="max-width:100%;max-height:70vh"; }
                Preview::Audio(_) => { audio controls src=(href) {} }
                Preview::Video(_) => { video controls src=(href) style="max-width:100%" {} }
                Preview::Pdf => { p { a href=(href) target="_blank" rel="noopener" { "Open the PDF" } } }
            }
        }
    }
}
