"""The pages' one script, served from the same origin at ``/dashboard.js`` (the CSP forbids
inline script and every other origin).

What it does, on the dashboard and on a library's page:

* the admin token: HTML forms cannot send ``Authorization: Bearer``. "Show details" fetches the
  page again with the token and ``Accept: text/html`` and swaps in its ``data-view`` regions
  (parsed with DOMParser, so nothing in them runs). A token the server accepted is kept in the
  tab's ``sessionStorage`` (gone when the tab closes, or on "Forget token"), so the library pages
  opened from the dashboard show the full view too.
* the upload form (dashboard), "Warm now" and "Retry failed items" (library page): each POSTs
  with the token, says what happened in a ``role=status`` line, and refreshes the view.
"""

from __future__ import annotations

SCRIPT = """\
"use strict";
(() => {
  const KEY = "warmerAdminToken";
  const $ = (id) => document.getElementById(id);
  const say = (id, text) => { const el = $(id); if (el) el.textContent = text; };
  const stored = () => {
    try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; }
  };
  const keep = (token) => {
    try {
      if (token) sessionStorage.setItem(KEY, token); else sessionStorage.removeItem(KEY);
    } catch (e) { /* storage disabled: the token lives in the field only */ }
  };
  const token = () => (($("token") && $("token").value) || stored()).trim();
  const bearer = (t) => ({"Authorization": "Bearer " + t});

  // This page again, as HTML, with the token; its data-view regions replace ours. True when
  // the server showed the full view, i.e. it accepted the token.
  async function refresh(t) {
    const resp = await fetch(location.pathname, {
      headers: {...bearer(t), "Accept": "text/html"}, cache: "no-store",
    });
    if (!resp.ok) throw new Error("the page answered " + resp.status);
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    if (doc.body.dataset.access !== "full") return false;
    for (const region of document.querySelectorAll("[data-view]")) {
      const fresh = doc.getElementById(region.id);
      if (fresh) region.replaceWith(document.adoptNode(fresh));
    }
    document.title = doc.title;
    document.body.dataset.access = "full";
    return true;
  }

  async function unlock(t) {
    if (!t) { say("token-status", "Enter the admin token first."); return; }
    say("token-status", "Checking the token\\u2026");
    try {
      if (await refresh(t)) {
        keep(t);
        say("token-status", "Full view. The token is kept in this tab until you close it " +
            "or press Forget token.");
      } else {
        keep("");
        say("token-status", "That token was not accepted: the page shows progress only.");
      }
    } catch (err) {
      say("token-status", "Could not load the full view: " + err.message);
    }
  }

  const DONE = {
    warm: (body) => {
      const run = (body.jobs || [])[0];
      return run && run.redriven ? run.redriven + " units sent to the warming queue."
                                 : "Nothing was pending: nothing to warm.";
    },
    retry: (body) => body.retried
      ? body.retried + " failed items queued again: the warming queue takes them up now."
      : "No failed items to retry.",
  };

  async function post(url, t, body) {
    const headers = {...bearer(t), "Accept": "application/json"};
    const resp = await fetch(url, {method: "POST", body, headers});
    let data = {};
    try { data = await resp.json(); } catch (e) { /* not JSON: reported by status */ }
    if (!resp.ok) {
      const why = (data.error && data.error.message) || "no detail";
      throw new Error("refused (" + resp.status + "): " + why);
    }
    return data;
  }

  async function act(form) {
    const t = token();
    if (!t) { say("action-status", "Enter the admin token above first."); return; }
    say("action-status", "Working\\u2026");
    let text;
    try {
      const data = await post(form.action, t, undefined);
      keep(t);
      await refresh(t);
      text = DONE[form.dataset.action](data);
    } catch (err) {
      text = "Not done: " + err.message;
    }
    say("action-status", text);
  }

  async function upload(form) {
    const t = token();
    if (!t) { say("upload-result", "Enter the admin token above first."); return; }
    say("upload-result", "Uploading\\u2026");
    let text;
    try {
      const body = await post(form.action, t, new FormData(form));
      keep(t);
      await refresh(t);
      text = "Imported " + body.format + ": " + body.validIsbns + " ISBNs, " + body.authors +
             " authors. It is in the list below.";
    } catch (err) {
      text = "Not imported: " + err.message;
    }
    say("upload-result", text);
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.id === "token-form") {
      event.preventDefault();
      unlock(($("token").value || "").trim());
    } else if (form.id === "upload") {
      event.preventDefault();
      upload(form);
    } else if (form.dataset.action in DONE) {
      event.preventDefault();
      act(form);
    }
  });
  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.id === "forget-token") {
      keep("");
      location.reload();
    }
  });
  document.addEventListener("DOMContentLoaded", () => {
    const t = stored();
    if (t) unlock(t);
  });
})();
"""
