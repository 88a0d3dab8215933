// Nimbus pages work without this script: links and forms list, browse,
// search and download. With it: times in the viewer's own time zone (the
// exact UTC value on hover), sorting in place, search as you type, keys
// to reach and walk the search (/, arrows, Escape), and
// uploads (resumable, in pieces, a progress bar per file).
"use strict";

// ---- Local times -------------------------------------------------------
function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.dateTime);
    if (!isNaN(d)) {
      const local = d.toLocaleString(undefined, {
        year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit",
      });
      // "12 minutes ago" keeps its words; the exact time is on hover.
      if (t.classList.contains("ago")) {
        t.title = local;
      } else {
        t.title = t.dateTime + " UTC";
        t.textContent = local;
      }
    }
  }
}
localTimes(document);

// ---- Sorting in place --------------------------------------------------
// Header cells with data-key sort their table without a round trip; the
// links inside them stay the way to sort without the script.
function sortKey(row, key) {
  const cells = row.cells;
  if (key === "size") {
    const m = /^(\d+) bytes/.exec(cells[1] && cells[1].title || "");
    return m ? Number(m[1]) : 0;
  }
  if (key === "time") {
    const t = cells[2] && cells[2].querySelector("time[datetime]");
    return t ? Date.parse(t.dateTime) || 0 : 0;
  }
  // Folders first, then by name.
  return (row.classList.contains("folder") ? "0" : "1") + cells[0].textContent.toLowerCase();
}
for (const th of document.querySelectorAll("th[data-key]")) {
  th.addEventListener("click", (e) => {
    e.preventDefault();
    const key = th.dataset.key;
    const table = th.closest("table");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    const asc = key === "name";
    rows.sort((a, b) => {
      const x = sortKey(a, key), y = sortKey(b, key);
      const c = x < y ? -1 : x > y ? 1 : 0;
      return asc ? c : -c;
    });
    for (const r of rows) body.appendChild(r);
    for (const h of table.querySelectorAll("th[data-key]")) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    const url = new URL(location.href);
    url.searchParams.set("sort", key);
    history.replaceState(null, "", url);
  });
}

// ---- Search as you type ------------------------------------------------
// The results page is fetched and its content shown in place.
const searchBox = document.querySelector("form.search input[name=q]");
if (searchBox) {
  let timer = 0, asked = 0;
  searchBox.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = searchBox.value.trim();
      if (q.length < 2) return;
      const mine = ++asked;
      const url = "/search?q=" + encodeURIComponent(q);
      try {
        const r = await fetch(url, { credentials: "same-origin" });
        if (!r.ok || mine !== asked) return;
        const doc = new DOMParser().parseFromString(await r.text(), "text/html");
        const fresh = doc.querySelector("main");
        if (!fresh || mine !== asked) return;
        // The header (with the focused search box) stays; the page's
        // content becomes the results.
        const main = document.querySelector("main");
        main.replaceChildren(...Array.from(fresh.childNodes));
        localTimes(main);
        history.replaceState(null, "", url);
      } catch (_) {
        // Offline or the server is restarting: the form still works.
      }
    }, 250);
  });
}

// ---- Keyboard ----------------------------------------------------------
// "/" goes to the search box; from it, the down arrow goes to the first
// file listed, and up and down move along a table's rows (the same column's
// link); Escape goes back to the search box.
function rowLinks(table) {
  return Array.from(table.querySelectorAll("tbody tr")).map((tr) =>
    tr.querySelector("td a[href]")).filter(Boolean);
}
document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  const t = e.target;
  const typing = t instanceof HTMLElement &&
    (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName));
  const box = document.querySelector("form.search input[name=q]");
  if (e.key === "/" && !typing && box) {
    e.preventDefault();
    box.focus();
    box.select();
    return;
  }
  if (t === box && e.key === "ArrowDown") {
    const table = document.querySelector("main table");
    const first = table && rowLinks(table)[0];
    if (first) { e.preventDefault(); first.focus(); }
    return;
  }
  const table = t instanceof HTMLAnchorElement && t.closest("main table");
  if (!table) return;
  const links = rowLinks(table);
  const at = links.indexOf(t);
  if (at < 0) return;
  if (e.key === "ArrowDown" && at + 1 < links.length) { e.preventDefault(); links[at + 1].focus(); }
  else if (e.key === "ArrowUp") {
    e.preventDefault();
    if (at > 0) links[at - 1].focus(); else if (box) box.focus();
  } else if (e.key === "Escape" && box) { e.preventDefault(); box.focus(); }
});

// ---- Uploads -----------------------------------------------------------
// Each piece is stored durably before the next; a broken connection loses
// at most the piece in flight (the server keeps what arrived of it).
const PIECE = 8 * 1024 * 1024;

function human(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// How many times this tab's uploads had to continue from where the server
// stood (after a broken connection, a refused piece or a new login), kept
// across the reload after an upload (for diagnosis, and read by the tests).
function noteRetry() {
  const n = Number(sessionStorage.getItem("nimbus-upload-resumes") || 0);
  sessionStorage.setItem("nimbus-upload-resumes", String(n + 1));
}

// One request; resolves with {status, json, offset} or rejects on a
// network failure. Progress of the request body goes to onSent.
// The session's CSRF token, from the page; renewed after logging in again.
const auth = { csrf: "" };

async function renewToken() {
  try {
    const r = await fetch("/api/v1/session", { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) return false;
    const j = await r.json();
    if (!j.csrf) return false;
    auth.csrf = j.csrf;
    return true;
  } catch (_) {
    return false;
  }
}

function send(method, url, body, headers, onSent) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open(method, url);
    x.setRequestHeader("X-CSRF-Token", auth.csrf);
    for (const [k, v] of Object.entries(headers || {})) x.setRequestHeader(k, v);
    if (onSent) x.upload.onprogress = (e) => onSent(e.loaded);
    x.onload = () => {
      let json = null;
      try { json = JSON.parse(x.responseText); } catch (_) { /* not JSON */ }
      const off = x.getResponseHeader("Upload-Offset");
      resolve({ status: x.status, json, offset: off === null ? null : Number(off) });
    };
    x.onerror = () => reject(new Error("network"));
    x.ontimeout = () => reject(new Error("timeout"));
    x.send(body === undefined ? null : body);
  });
}

class Failed extends Error {}

function failure(r) {
  const msg = r.json && r.json.message ? r.json.message : "the server answered " + r.status;
  return new Failed(msg);
}

// Uploads one file; `ui` shows its progress. Resumes an upload of the
// same file started before (also in an earlier page), retries a broken
// connection with growing pauses, and continues from what the server has.
async function uploadFile(file, machine, path, ui) {
  const memo = "nimbus-upload:" + machine + "/" + path + ":" + file.size + ":" + file.lastModified;
  let id = localStorage.getItem(memo);
  let state = null;
  let pause = 1000;
  const retry = async (why) => {
    noteRetry();
    ui.msg(why + "; retrying in " + Math.round(pause / 1000) + " s");
    await sleep(pause);
    pause = Math.min(pause * 2, 30000);
  };
  // Logged out (the server restarted, or the session expired): wait for a
  // login in another tab, then continue with that session's token.
  const relogin = async () => {
    noteRetry();
    ui.msg("your session ended: log in again in another tab; the upload then continues");
    await sleep(pause);
    pause = Math.min(pause * 2, 10000);
    await renewToken();
  };
  const loggedOut = (r) => r.status === 401 || (r.status === 403 && r.json && /CSRF/.test(r.json.message));
  for (;;) {
    try {
      if (id) {
        const r = await send("GET", "/api/v1/uploads/" + id);
        if (r.status === 200) state = r.json;
        else if (r.status === 404) { id = null; localStorage.removeItem(memo); }
        else if (loggedOut(r)) { await relogin(); continue; }
        else if (r.status >= 500) { await retry("the server is unavailable"); continue; }
        else throw failure(r);
      }
      if (!id) {
        const r = await send("POST", "/api/v1/uploads", JSON.stringify({
          machine, path, size: file.size, mtime: Math.floor(file.lastModified / 1000),
        }), { "Content-Type": "application/json" });
        if (loggedOut(r)) { await relogin(); continue; }
        if (r.status >= 500) { await retry("the server is unavailable"); continue; }
        if (r.status !== 201) throw failure(r);
        state = r.json;
        id = state.id;
        localStorage.setItem(memo, id);
      }
      break;
    } catch (e) {
      if (e instanceof Failed) throw e;
      await retry("connection lost");
    }
  }
  const started = Date.now();
  const startOffset = state.offset;
  while (!state.result) {
    const from = state.offset;
    const to = Math.min(from + PIECE, file.size);
    const range = from === to ? "bytes */" + file.size : "bytes " + from + "-" + (to - 1) + "/" + file.size;
    let r;
    try {
      r = await send("PUT", "/api/v1/uploads/" + id, file.slice(from, to),
        { "Content-Range": range }, (sent) => ui.progress(from + sent, started, startOffset));
    } catch (_) {
      await retry("connection lost");
      // Ask where the server stands: what arrived of the broken piece is kept.
      try {
        const s = await send("GET", "/api/v1/uploads/" + id);
        if (s.status === 200) state = s.json;
        else if (loggedOut(s)) await relogin();
        else if (s.status === 404) { localStorage.removeItem(memo); throw new Failed("the server no longer has this upload; add the file again"); }
      } catch (e) {
        if (e instanceof Failed) throw e;
      }
      continue;
    }
    if (r.status === 200 || r.status === 201) {
      state = r.json;
      pause = 1000;
      ui.progress(state.offset, started, startOffset);
    } else if (r.status === 409 && r.offset !== null) {
      // The piece did not start where the server stands (the browser
      // resent a piece after a broken connection, say): continue there.
      noteRetry();
      state.offset = r.offset;
      if (r.offset === file.size) {
        const s = await send("GET", "/api/v1/uploads/" + id);
        if (s.status === 200) state = s.json;
      }
    } else if (loggedOut(r)) {
      await relogin();
    } else if (r.status === 503 || r.status >= 500 || r.status === 409) {
      await retry("the server is busy");
    } else {
      throw failure(r);
    }
  }
  localStorage.removeItem(memo);
  return state.result;
}

function uploadRow(list, file) {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = Math.max(file.size, 1);
  bar.value = 0;
  const msg = document.createElement("span");
  msg.className = "msg";
  msg.textContent = "waiting";
  li.append(name, bar, msg);
  list.append(li);
  return {
    li,
    msg: (t) => { msg.textContent = t; },
    progress: (done, started, from) => {
      bar.value = done;
      const secs = (Date.now() - started) / 1000;
      const rate = secs > 0.5 ? " · " + human((done - from) / secs) + "/s" : "";
      msg.textContent = human(done) + " of " + human(file.size) + rate;
    },
  };
}

const panel = document.querySelector("section.upload");
if (panel) {
  const drop = panel.querySelector(".drop");
  const input = drop.querySelector("input[type=file]");
  const list = panel.querySelector("ul.uploads");
  auth.csrf = panel.dataset.csrf;
  const max = Number(panel.dataset.max);
  panel.querySelector(".nojs").hidden = true;
  drop.hidden = false;
  const queue = [];
  let running = false;

  const run = async () => {
    if (running) return;
    running = true;
    let failed = 0, done = 0;
    while (queue.length) {
      const { file, machine, path, ui } = queue.shift();
      ui.li.className = "busy";
      try {
        if (file.size > max) throw new Failed("larger than the server's limit of " + human(max));
        const result = await uploadFile(file, machine, path, ui);
        ui.li.className = "done";
        ui.msg(result.new_version
          ? "uploaded: " + human(result.size) + ", version " + result.versions
          : "unchanged: the same content is already the latest version");
        done++;
      } catch (e) {
        ui.li.className = "failed";
        ui.msg("failed: " + e.message);
        failed++;
      }
    }
    running = false;
    // Show the new files in the listing once everything went up.
    if (done && !failed) setTimeout(() => location.reload(), 800);
  };

  const add = (files) => {
    const machine = drop.querySelector("[name=machine]").value.trim();
    const folder = drop.querySelector("[name=folder]").value.trim().replace(/^\/+|\/+$/g, "");
    for (const file of files) {
      const ui = uploadRow(list, file);
      queue.push({ file, machine, path: folder ? folder + "/" + file.name : file.name, ui });
    }
    run();
  };

  input.addEventListener("change", () => { add(Array.from(input.files)); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    add(Array.from(e.dataTransfer.files));
  });
}
