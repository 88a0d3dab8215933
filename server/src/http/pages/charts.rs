//! Charts drawn by the server as inline SVG: no chart library, nothing
//! loaded from elsewhere, readable with scripts off. Each has a `<title>`
//! and its figures in a table beside it for screen readers and for anyone
//! who wants the numbers (the table gives exact bytes, as the API does).

use super::layout::human_size;
use crate::history::day_name;
use maud::{html, Markup};

/// Days the activity timelines show.
pub const TIMELINE_DAYS: u32 = 30;
/// Days the storage charts show at most.
pub const STORAGE_DAYS: u32 = 90;

/// What a timeline shows and where its bars lead.
pub struct Timeline<'a> {
    /// Unique on the page: the chart's element ids start with it.
    pub id: &'a str,
    /// What the bars count, for the title: "Versions backed up per day on pc".
    pub title: String,
    pub caption: &'a str,
    /// (day since the epoch, versions, bytes), any order.
    pub days: &'a [(u32, u32, u64)],
    pub today: u32,
    /// Where a day's bar leads: given the day, a URL.
    pub link: &'a dyn Fn(u32) -> String,
    /// The day shown as chosen (a browse "as at" inside the range).
    pub chosen: Option<u32>,
}

/// Activity over the last [`TIMELINE_DAYS`] days, one bar a day, taller
/// and darker the more versions it saw; a day with backups is a link.
pub fn timeline(t: &Timeline) -> Markup {
    let first = t.today.saturating_sub(TIMELINE_DAYS - 1);
    let mut per: Vec<(u32, u32, u64)> = (first..=t.today).map(|d| (d, 0, 0)).collect();
    for &(d, n, b) in t.days {
        if (first..=t.today).contains(&d) {
            per[(d - first) as usize] = (d, n, b);
        }
    }
    let max = per.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let (w, h, bar) = (TIMELINE_DAYS * 20, 90u32, 16u32);
    let total: u32 = per.iter().map(|p| p.1).sum();
    let title_id = format!("{}-title", t.id);
    html! {
        figure.timeline id=(t.id) {
            svg role="img" aria-labelledby=(title_id) viewBox={ "0 0 " (w) " " (h + 18) } width="100%" preserveAspectRatio="xMinYMin meet" {
                title id=(title_id) { (t.title) ", last " (TIMELINE_DAYS) " days: " (total) " in all" }
                line x1="0" y1=(h) x2=(w) y2=(h) stroke="currentColor" stroke-opacity="0.3" {}
                @for (i, (d, n, b)) in per.iter().enumerate() {
                    @let x = i as u32 * 20 + 2;
                    @if t.chosen == Some(*d) {
                        rect x=(x - 2) y="0" width=(bar + 4) height=(h) fill="currentColor" fill-opacity="0.08" class="chosen" {}
                    }
                    @if *n > 0 {
                        @let bh = ((*n as f64 / max) * (h - 4) as f64).max(3.0) as u32;
                        @let shade = 0.35 + 0.65 * (*n as f64 / max);
                        a href=((t.link)(*d)) class="day" {
                            title { (day_name(*d)) ": " (super::layout::count(*n, "version", "versions")) ", " (human_size(*b)) }
                            rect x=(x) y=(h - bh) width=(bar) height=(bh) fill="#1f6feb" fill-opacity=(format!("{shade:.2}")) data-day=(day_name(*d)) {}
                        }
                    } @else {
                        rect x=(x) y=(h - 2) width=(bar) height="2" fill="currentColor" fill-opacity="0.15" {}
                    }
                }
                text x="0" y=(h + 14) font-size="11" fill="currentColor" { (day_name(first)) }
                text x=(w) y=(h + 14) font-size="11" fill="currentColor" text-anchor="end" { (day_name(t.today)) }
            }
            figcaption { (t.caption) }
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

/// One line of a [`line_chart`].
pub struct Series<'a> {
    pub label: &'a str,
    pub colour: &'a str,
    /// (day, bytes), oldest first.
    pub points: Vec<(u32, u64)>,
}

/// Bytes over days, one line per series, the days from the first noted
/// one (at most [`STORAGE_DAYS`] back) to today.
pub fn line_chart(id: &str, title: &str, caption: &str, series: &[Series], today: u32) -> Markup {
    let first = series
        .iter()
        .filter_map(|s| s.points.first().map(|p| p.0))
        .min()
        .unwrap_or(today)
        .max(today.saturating_sub(STORAGE_DAYS - 1))
        .min(today);
    let span = (today - first).max(1) as f64;
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, h, left) = (600.0f64, 160.0f64, 4.0f64);
    let x = |d: u32| left + (d.saturating_sub(first)) as f64 / span * (w - 2.0 * left);
    let y = |v: u64| h - 4.0 - v as f64 / max * (h - 24.0);
    let mut days: Vec<u32> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|d| *d >= first)
        .collect();
    days.sort_unstable();
    days.dedup();
    let value = |s: &Series, d: u32| s.points.iter().find(|p| p.0 == d).map(|p| p.1);
    let title_id = format!("{id}-title");
    html! {
        figure.chart id=(id) {
            svg role="img" aria-labelledby=(title_id) viewBox={ "0 0 " (w) " " (h + 18.0) } width="100%" preserveAspectRatio="xMinYMin meet" {
                title id=(title_id) { (title) }
                line x1="0" y1=(h) x2=(w) y2=(h) stroke="currentColor" stroke-opacity="0.3" {}
                text x="2" y="11" font-size="11" fill="currentColor" { (human_size(max as u64)) }
                @for s in series {
                    @let pts: Vec<&(u32, u64)> = s.points.iter().filter(|p| p.0 >= first).collect();
                    @if pts.len() > 1 {
                        polyline fill="none" stroke=(s.colour) stroke-width="2" points=(pts.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1))).collect::<Vec<_>>().join(" ")) {}
                    }
                    @for p in &pts {
                        circle cx=(format!("{:.1}", x(p.0))) cy=(format!("{:.1}", y(p.1))) r="3" fill=(s.colour) {
                            title { (s.label) ", " (day_name(p.0)) ": " (human_size(p.1)) }
                        }
                    }
                }
                text x="0" y=(h + 14.0) font-size="11" fill="currentColor" { (day_name(first)) }
                text x=(w) y=(h + 14.0) font-size="11" fill="currentColor" text-anchor="end" { (day_name(today)) }
            }
            figcaption {
                @for s in series {
                    span.key { span.swatch style={ "background:" (s.colour) } {} " " (s.label) } " "
                }
                br;
                (caption)
            }
            details {
                summary { "The figures" }
                table.chart-data {
                    thead { tr { th { "Day (UTC)" } @for s in series { th { (s.label) " (bytes)" } } } }
                    tbody {
                        @for d in &days {
                            tr {
                                td { (day_name(*d)) }
                                @for s in series { td.n { @if let Some(v) = value(s, *d) { (v) } @else { "-" } } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The data disk's used and free space as one bar.
pub fn disk_bar(total: u64, free: u64, stored: u64) -> Markup {
    let used = total.saturating_sub(free);
    let w = 600.0f64;
    let share = |v: u64| v as f64 / total.max(1) as f64 * w;
    let ours = stored.min(used);
    html! {
        figure.chart id="disk-chart" {
            svg role="img" aria-labelledby="disk-chart-title" viewBox="0 0 600 28" width="100%" preserveAspectRatio="xMinYMin meet" {
                title id="disk-chart-title" { "The data disk: " (human_size(used)) " used (" (human_size(ours)) " by backups), " (human_size(free)) " free of " (human_size(total)) }
                rect x="0" y="2" width=(w) height="24" rx="4" fill="currentColor" fill-opacity="0.1" {}
                rect x="0" y="2" width=(format!("{:.1}", share(used))) height="24" rx="4" fill="#8b949e" {}
                rect x="0" y="2" width=(format!("{:.1}", share(ours))) height="24" rx="4" fill="#1f6feb" {}
            }
            figcaption {
                span.key { span.swatch style="background:#1f6feb" {} " backups" } " "
                span.key { span.swatch style="background:#8b949e" {} " other use" } " "
                span.key { span.swatch.free {} " free" }
            }
            details {
                summary { "The figures" }
                table.chart-data { tbody {
                    tr { th { "Total (bytes)" } td.n { (total) } }
                    tr { th { "Used (bytes)" } td.n { (used) } }
                    tr { th { "Used by backups (bytes)" } td.n { (ours) } }
                    tr { th { "Free (bytes)" } td.n { (free) } }
                } }
            }
        }
    }
}
