// Nimbus pages work without this script; with it, times read in the
// viewer's own time zone (the exact UTC value stays on hover).
"use strict";
for (const t of document.querySelectorAll("time[datetime]")) {
  const d = new Date(t.dateTime);
  if (!isNaN(d)) {
    t.title = t.dateTime + " UTC";
    t.textContent = d.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric",
      hour: "2-digit", minute: "2-digit",
    });
  }
}
