//! Charts drawn by the server as inline SVG: no chart library, nothing
//! loaded from elsewhere, readable with scripts off. Each has a `<title>`
//! and its figures in a table beside it for screen readers and for anyone
//! who wants the numbers.

use super::layout::human_size;
use maud::{html, Markup};
use nimbus_common::time::format_utc;

/// Days the activity timeline shows.
pub const TIMELINE_DAYS: u32 = 30;

/// A machine's backup activity over the last [`TIMELINE_DAYS`] days, one
/// bar a day (taller and darker the more versions it saw); a day with
/// backups links to `browse_base?at=END OF THAT DAY`, the folder as it was
/// then. `days` is (day since the epoch, versions, bytes), any order.
pub fn activity_timeline(
    machine: &str,
    browse_base: &str,
    days: &[(u32, u32, u64)],
    today: u32,
) -> Markup {
    let first = today.saturating_sub(TIMELINE_DAYS - 1);
    let mut per: Vec<(u32, u32, u64)> = (first..=today).map(|d| (d, 0, 0)).collect();
    for &(d, n, b) in days {
        if (first..=today).contains(&d) {
            per[(d - first) as usize] = (d, n, b);
        }
    }
    let max = per.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let (w, h, bar) = (TIMELINE_DAYS * 20, 90u32, 16u32);
    let day_name = |d: u32| format_utc(d as i64 * 86_400)[..10].to_string();
    let total: u32 = per.iter().map(|p| p.1).sum();
    html! {
        figure.timeline {
            svg role="img" aria-labelledby="timeline-title" viewBox={ "0 0 " (w) " " (h + 18) } width="100%" preserveAspectRatio="xMinYMin meet" {
                title id="timeline-title" { "Versions backed up per day on " (machine) ", last " (TIMELINE_DAYS) " days: " (total) " in all" }
                line x1="0" y1=(h) x2=(w) y2=(h) stroke="currentColor" stroke-opacity="0.3" {}
                @for (i, (d, n, b)) in per.iter().enumerate() {
                    @let x = i as u32 * 20 + 2;
                    @if *n > 0 {
                        @let bh = ((*n as f64 / max) * (h - 4) as f64).max(3.0) as u32;
                        @let shade = 0.35 + 0.65 * (*n as f64 / max);
                        a href={ (browse_base) "?at=" (d * 86_400 + 86_399) } class="day" {
                            title { (day_name(*d)) ": " (n) " version(s), " (human_size(*b)) "; browse as it was at the end of the day" }
                            rect x=(x) y=(h - bh) width=(bar) height=(bh) fill="#1f6feb" fill-opacity=(format!("{shade:.2}")) data-day=(day_name(*d)) {}
                        }
                    } @else {
                        rect x=(x) y=(h - 2) width=(bar) height="2" fill="currentColor" fill-opacity="0.15" {}
                    }
                }
                text x="0" y=(h + 14) font-size="11" fill="currentColor" { (day_name(first)) }
                text x=(w) y=(h + 14) font-size="11" fill="currentColor" text-anchor="end" { (day_name(today)) }
            }
            figcaption { "Backups per day, last " (TIMELINE_DAYS) " days. A bar leads to the files as they were that day." }
            details {
                summary { "The figures" }
                table.chart-data {
                    thead { tr { th { "Day (UTC)" } th { "Versions" } th { "Bytes" } } }
                    tbody {
                        @for (d, n, b) in per.iter().filter(|p| p.1 > 0) {
                            tr { td { (day_name(*d)) } td.n { (n) } td.n { (b) } }
                        }
                    }
                }
            }
        }
    }
}
