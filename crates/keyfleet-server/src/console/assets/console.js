// keyfleet console: live job progress from server-sent events, and live job lists. Every page works without
// it (the server renders each page whole); this only keeps an open page up to date without a reload.
"use strict";

// Replaces each element marked data-refresh (by id) with its newer version from a fresh copy of this page.
async function refreshParts() {
  const resp = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
  if (!resp.ok) return;
  const fresh = new DOMParser().parseFromString(await resp.text(), "text/html");
  document.querySelectorAll("[data-refresh][id]").forEach((old) => {
    const replacement = fresh.getElementById(old.id);
    if (replacement) old.replaceWith(document.importNode(replacement, true));
  });
}

function duration(secs) {
  if (secs === null || secs === undefined || !isFinite(secs)) return "—";
  secs = Math.round(secs);
  if (secs < 60) return secs + " s";
  const m = Math.floor(secs / 60), s = secs % 60;
  if (m < 60) return m + " min " + s + " s";
  return Math.floor(m / 60) + " h " + (m % 60) + " min";
}

// One progress event: {id, bulkjob_id, overall_status, total, done, counts{...}, percent, rate_per_sec?, eta_secs?}
// (the rate and the time left are absent until measured).
function showProgress(p) {
  const set = (key, text) => document.querySelectorAll('[data-k="' + key + '"]').forEach((e) => { e.textContent = text; });
  set("done", String(p.done));
  set("total", String(p.total));
  set("percent", p.percent.toFixed(1) + " %");
  // The last measured rate stays shown once the stream stops measuring (at the end).
  if (p.rate_per_sec != null) set("rate", p.rate_per_sec.toFixed(1) + " items/s");
  set("eta", duration(p.eta_secs));
  set("status", p.overall_status.replace("_", " "));
  document.querySelectorAll('[data-k="status"]').forEach((e) => { e.className = "badge status-" + p.overall_status; });
  for (const [name, n] of Object.entries(p.counts || {})) {
    document.querySelectorAll('[data-count="' + name + '"]').forEach((e) => { e.textContent = String(n); });
  }
  document.querySelectorAll("progress[data-live]").forEach((e) => {
    e.value = p.percent;
    e.textContent = p.percent.toFixed(1) + " %";
  });
}

function watchJob(el) {
  const source = new EventSource(el.dataset.events);
  const read = (e) => { try { return JSON.parse(e.data); } catch (_) { return null; } };
  source.addEventListener("progress", (e) => { const p = read(e); if (p) showProgress(p); });
  source.addEventListener("end", (e) => {
    source.close();
    const p = read(e);
    if (p) showProgress(p);
    el.dataset.ended = "true";
    refreshParts();
  });
}

// A list of jobs: the rows are fetched again every few seconds while the page is visible.
function pollRows(el) {
  const every = Number(el.dataset.poll) || 3000;
  setInterval(() => { if (!document.hidden) refreshParts(); }, every);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-events]").forEach(watchJob);
  document.querySelectorAll("[data-poll]").forEach(pollRows);
});
