//! The `log` facade's logger for both programs: `TIME LEVEL message` on
//! stderr, time in UTC (stdout stays free for what scripts parse: the
//! server's `listening on` line, the client's summaries). Our lines from
//! INFO up; other crates' (tiny_http's) from WARN up.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        let ours = m.target().starts_with("nimbus");
        m.level() <= if ours { Level::Info } else { Level::Warn }
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            eprintln!(
                "{} {} {}",
                crate::time::format_utc(crate::time::unix_now()),
                r.level(),
                r.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger; later calls do nothing.
pub fn init() {
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(LevelFilter::Info);
    }
}
