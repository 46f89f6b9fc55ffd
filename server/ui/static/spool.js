// Spool's dashboard: progressive enhancement only. Every page works
// without this file; with it, the overview's counts refresh while the tab
// is visible, and destructive forms ask first.
(function () {
  "use strict";
  var base = document.body.getAttribute("data-base") || "";

  // Forms with data-confirm ask before they submit.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
    }
  });

  if (document.body.getAttribute("data-page") !== "overview.html") {
    return;
  }
  var every = 3000;
  function setText(el, text) {
    if (el && el.textContent !== String(text)) {
      el.textContent = String(text);
    }
  }
  function age(s) {
    if (!s || s <= 0) { return "\u2013"; }
    if (s < 1) { return Math.round(s * 1000) + " ms"; }
    if (s < 60) { return Math.round(s) + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s"; }
    if (s < 172800) { return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m"; }
    return Math.floor(s / 86400) + "d";
  }
  function refresh() {
    if (document.hidden) { return; }
    fetch(base + "/live.json", { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) {
        if (!v) { return; }
        var shown = document.querySelectorAll("tr[data-queue]");
        if (shown.length !== v.queues.length) {
          window.location.reload(); // a queue came or went: draw the table again
          return;
        }
        var totals = {};
        v.queues.forEach(function (q) {
          var row = document.querySelector('tr[data-queue="' + CSS.escape(q.queue) + '"]');
          if (!row) { window.location.reload(); return; }
          var capped = q.capped || [];
          Object.keys(q.counts).forEach(function (s) {
            totals[s] = (totals[s] || 0) + q.counts[s];
            setText(row.querySelector('[data-s="' + s + '"]'), q.counts[s] + (capped.indexOf(s) >= 0 ? "+" : ""));
          });
          setText(row.querySelector('[data-s="age"]'), age(q.oldest_available_seconds));
        });
        ["available", "running", "scheduled"].forEach(function (s) {
          setText(document.querySelector('[data-total="' + s + '"]'), totals[s] || 0);
        });
        setText(document.querySelector('[data-total="dead"]'), v.dead + (v.dead_capped ? "+" : ""));
        if (v.workers !== null && v.workers !== undefined) {
          setText(document.querySelector('[data-total="workers"]'), v.workers);
        }
      })
      .catch(function () {});
  }
  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
