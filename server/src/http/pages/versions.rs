//! `GET /versions/{machine}/{path}`: a file's versions on a page, each
//! downloadable.

use super::browse::crumbs;
use super::layout::{download_href, human_size, user_page};
use crate::http::auth::Identity;
use crate::http::core::{ApiError, Handled};
use crate::http::ctx::Ctx;
use crate::space::FileTarget;
use maud::html;
use nimbus_common::time::format_utc;

pub fn versions_page(ctx: &Ctx, who: &Identity, target: FileTarget) -> Handled {
    let FileTarget { machine: key, path } = target;
    let machine = key.machine();
    let versions = ctx
        .dm
        .versions(key.as_str(), &path)
        .ok_or(ApiError::NotFound)?;
    let (folder, name) = path.rsplit_once('/').unwrap_or(("", &path));
    let content = html! {
        (crumbs("/browse", machine, folder, name))
        h1 { (path) }
        p { "On " b { (machine) } "." }
        table {
            thead { tr {
                th { "Version" } th { "Recorded (UTC)" } th { "Modified (UTC)" }
                th { "Size" } th { "Content" }
            } }
            tbody {
                @for v in versions.iter().rev() {
                    tr {
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
