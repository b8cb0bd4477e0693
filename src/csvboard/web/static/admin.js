// csvboard admin console: run history, run detail, upload-and-ingest, dashboards.
// All data comes from the JSON API. Text from the server is only ever set with textContent
// (never innerHTML), so a CSV cell or a message can never become markup.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const isAdmin = config.role === "admin";
  const ACTIVE = new Set(["queued", "running"]);
  const TAIL_REFRESH = 20; // run-history rows past the first page re-read per refresh

  // --- helpers -----------------------------------------------------------------------------

  const { el, cookie } = window.csvboardDom;

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  async function api(method, path, { body, headers } = {}) {
    const h = Object.assign({ Accept: "application/json" }, headers || {});
    if (method !== "GET") h["X-CSRF-Token"] = cookie("csvboard_csrf");
    if (body && !(body instanceof FormData)) {
      h["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    const res = await fetch(path, { method, headers: h, body, credentials: "same-origin" });
    if (res.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("signed out");
    }
    let doc = null;
    try { doc = await res.json(); } catch (e) { doc = null; }
    if (!res.ok) {
      let message = (doc && (doc.detail || doc.title)) || res.statusText;
      const fields = (doc && Array.isArray(doc.errors)) ? doc.errors : [];
      if (fields.length) {
        message += ": " + fields.slice(0, 5).map((f) => (f.field ? `${f.field}: ` : "") + f.message).join("; ");
      }
      const err = new Error(message);
      err.status = res.status;
      err.code = doc && doc.code;
      err.errors = fields;
      throw err;
    }
    return doc;
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return d.toLocaleString(config.lang === "en" ? "en-GB" : "ja-JP", {
      timeZone: config.timezone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  function fmtSize(n) {
    if (n === null || n === undefined) return "—";
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1024 / 1024).toFixed(1) + " MiB";
  }

  const statusText = (s) => t["st_" + s] || s;
  const kindText = (k) => t["kind_" + k] || k;
  const modeText = (m) => t["mode_" + m] || m;

  function badge(status) {
    return el("span", { class: "badge st-" + status, "data-status": status }, statusText(status));
  }

  function counts(run) {
    return `${run.processed_count}/${run.target_count} (${t.success} ${run.success_count} · ` +
      `${t.failed} ${run.failed_count} · ${t.unprocessed} ${run.unprocessed_count})`;
  }

  function fraction(run) {
    if (!ACTIVE.has(run.status)) return 1;
    if (!run.target_count) return run.status === "running" ? 0.05 : 0;
    return Math.min(1, run.processed_count / run.target_count);
  }

  // A finished run's bar is drawn full at once: the width transition (which eases the bar
  // along while a run is active) would otherwise start it from 0 on every page load, and a
  // glance or a screenshot caught it part-filled.
  function setBar(fill, value, status) {
    const pct = Math.round(value * 100);
    const animate = ACTIVE.has(status) && fill.hasAttribute("data-value");
    fill.className = "fill" + (status ? " st-" + status : "") + (animate ? "" : " instant");
    fill.style.width = pct + "%";
    fill.setAttribute("data-value", String(pct));
    if (status) fill.setAttribute("data-status", status);
  }

  function showError(node, err) {
    node.textContent = err && err.message ? err.message : String(err);
    node.hidden = false;
  }

  async function loadDashboards() {
    const doc = await api("GET", "/api/v1/dashboards");
    return doc.items;
  }

  // --- run history -------------------------------------------------------------------------

  function runRow(run) {
    const link = el("a", { href: "/admin/runs/" + run.run_id, class: "run-link" }, fmtTime(run.created_at));
    return el("tr", { "data-run-id": run.run_id, "data-status": run.status },
      el("td", null, link),
      el("td", null, run.dashboard || "—"),
      el("td", null, kindText(run.run_kind)),
      el("td", null, modeText(run.mode)),
      el("td", null, badge(run.status)),
      el("td", { class: "num" }, counts(run)),
      el("td", null, run.requested_by || "—"));
  }

  function initRuns() {
    const body = document.getElementById("runs-body");
    const filters = document.getElementById("run-filters");
    const more = document.getElementById("runs-more");
    const empty = document.getElementById("runs-empty");
    const errorBox = document.getElementById("runs-error");
    let runs = [];
    let nextCursor = null;
    let timer = null;

    function query(cursor) {
      const p = new URLSearchParams();
      for (const [k, v] of new FormData(filters)) if (v) p.set(k, v);
      p.set("limit", "50");
      if (cursor) p.set("cursor", cursor);
      return "/api/v1/ops/ingestion/runs?" + p.toString();
    }

    function render() {
      body.replaceChildren(...runs.map(runRow));
      empty.hidden = runs.length > 0;
      more.hidden = !nextCursor;
    }

    // Rows loaded with "show more" lie beyond the first page that refresh() re-reads: those
    // still queued or running are re-read one by one (up to TAIL_REFRESH per refresh).
    async function freshTail(pageIds) {
      const active = runs.filter((r) => !pageIds.has(r.run_id) && ACTIVE.has(r.status))
        .slice(0, TAIL_REFRESH);
      const fresh = new Map();
      await Promise.all(active.map(async (r) => {
        try {
          fresh.set(r.run_id, await api("GET", "/api/v1/ops/ingestion/runs/" + r.run_id));
        } catch (e) {
          if (e.status !== 404) throw e;
        }
      }));
      return fresh;
    }

    let busy = false;
    let again = false;

    async function refresh() {
      if (busy) { again = true; return; } // one refresh at a time; a request meanwhile re-runs it
      busy = true;
      clearTimeout(timer);
      try {
        const page = await api("GET", query(null));
        const ids = new Set(page.items.map((r) => r.run_id));
        const fresh = await freshTail(ids);
        const oldest = page.items.length ? page.items[page.items.length - 1].created_at : null;
        const tail = runs.filter((r) => !ids.has(r.run_id) && oldest && r.created_at < oldest)
          .map((r) => fresh.get(r.run_id) || r);
        runs = page.items.concat(tail);
        if (!tail.length) nextCursor = page.next_cursor;
        errorBox.hidden = true;
        render();
      } catch (e) {
        showError(errorBox, e);
      }
      busy = false;
      if (again) { again = false; refresh(); return; }
      const active = runs.some((r) => ACTIVE.has(r.status));
      timer = setTimeout(refresh, active ? 1000 : 4000);
    }

    more.addEventListener("click", async () => {
      try {
        const page = await api("GET", query(nextCursor));
        runs = runs.concat(page.items);
        nextCursor = page.next_cursor;
        render();
      } catch (e) { showError(errorBox, e); }
    });
    filters.addEventListener("change", () => { runs = []; nextCursor = null; refresh(); });
    document.addEventListener("csvboard:run-started", refresh);

    loadDashboards().then((boards) => {
      const sel = document.getElementById("filter-dashboard");
      for (const b of boards) sel.append(el("option", { value: b.slug }, `${b.name} (${b.slug})`));
      const up = document.getElementById("upload-dashboard");
      if (up) for (const b of boards) up.append(el("option", { value: b.slug }, `${b.name} (${b.slug})`));
    }).catch((e) => showError(errorBox, e));
    refresh();
    initAlerts();
    if (isAdmin) initUpload();
  }

  // --- open alerts (csvboard/alerts): what the admins were told, and a test message ---------

  function alertItem(a) {
    const opened = a.deliveries.filter((d) => d.event === "opened");
    const told = opened.map((d) => d.sent_at
      ? `${d.channel}: ${t.alert_sent}`
      : `${d.channel}: ${t.alert_pending}${d.last_error ? " (" + d.last_error + ")" : ""}`);
    const title = a.details && a.details.run_id
      ? el("a", { href: "/admin/runs/" + a.details.run_id }, a.summary) : a.summary;
    return el("li", { class: "alert-item", "data-kind": a.kind },
      el("strong", null, title),
      el("span", { class: "muted" }, ` ${t.alert_since} ${fmtTime(a.opened_at)}`),
      el("div", null, a.body),
      el("div", { class: "muted" }, told.length ? told.join(" / ") : t.alert_no_channel));
  }

  function initAlerts() {
    const list = document.getElementById("alerts-list");
    const empty = document.getElementById("alerts-empty");
    async function refresh() {
      try {
        const doc = await api("GET", "/api/v1/ops/alerts?state=open&limit=50");
        list.replaceChildren(...doc.items.map(alertItem));
        empty.hidden = doc.items.length > 0;
      } catch (e) {
        empty.hidden = true;
        list.replaceChildren(el("li", { class: "alert" }, e.message || String(e)));
      }
      setTimeout(refresh, 30000);
    }
    const button = document.getElementById("alerts-test");
    if (button) {
      const result = document.getElementById("alerts-test-result");
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const doc = await api("POST", "/api/v1/ops/alerts/test");
          const entries = Object.entries(doc.channels);
          result.textContent = entries.length
            ? entries.map(([c, err]) => `${c}: ${err === null ? t.alert_sent : err}`).join(" / ")
            : t.alert_no_channel;
        } catch (e) {
          result.textContent = e.message || String(e);
        }
        result.hidden = false;
        button.disabled = false;
      });
    }
    refresh();
  }

  function initUpload() {
    const form = document.getElementById("upload-form");
    if (!form) return;
    const box = document.getElementById("upload-status");
    const fill = document.getElementById("upload-fill");
    const text = document.getElementById("upload-text");
    const submit = document.getElementById("upload-submit");

    function show(run) {
      setBar(fill, fraction(run), run.status);
      text.replaceChildren(
        badge(run.status), " ", counts(run), " ",
        el("a", { href: "/admin/runs/" + run.run_id, class: "run-link" }, t.run_detail));
      if (run.error_summary) text.append(el("span", { class: "alert-inline" }, " " + run.error_summary));
    }

    async function follow(runId) {
      for (;;) {
        let run;
        try {
          run = await api("GET", "/api/v1/ops/ingestion/runs/" + runId);
        } catch (e) {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        show(run);
        if (!ACTIVE.has(run.status)) {
          document.dispatchEvent(new Event("csvboard:run-started"));
          return;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const data = new FormData(form);
      submit.disabled = true;
      box.hidden = false;
      setBar(fill, 0, "queued");
      text.textContent = "…";
      try {
        const accepted = await api("POST", "/api/v1/ops/ingestion/runs", {
          body: data, headers: { "Idempotency-Key": uuid() },
        });
        document.dispatchEvent(new Event("csvboard:run-started"));
        form.reset();
        await follow(accepted.run_id);
      } catch (e) {
        text.replaceChildren(el("span", { class: "alert-inline" }, `${t.upload_failed}: ${e.message}`));
      } finally {
        submit.disabled = false;
      }
    });
  }

  // --- run detail --------------------------------------------------------------------------

  function initRun() {
    const runId = config.run_id;
    document.getElementById("run-id").textContent = runId;
    const errorBox = document.getElementById("run-error");
    const statusNode = document.getElementById("run-status");
    const fill = document.getElementById("run-fill");
    const facts = document.getElementById("run-facts");
    const lineage = document.getElementById("run-lineage");
    const summary = document.getElementById("run-error-summary");
    const retryBtn = document.getElementById("run-retry");
    const cancelBtn = document.getElementById("run-cancel");
    const itemsBody = document.getElementById("items-body");
    const itemsMore = document.getElementById("items-more");
    const itemFilters = document.getElementById("item-filters");
    let itemCursor = null;
    let lastStatus = null;

    function fact(label, value) {
      return [el("dt", null, label), el("dd", null, value)];
    }

    function renderRun(run) {
      statusNode.replaceChildren(badge(run.status));
      statusNode.setAttribute("data-status", run.status);
      setBar(fill, fraction(run), run.status);
      facts.replaceChildren(
        ...fact(t.dashboard, run.dashboard || "—"),
        ...fact(t.run_kind, kindText(run.run_kind)),
        ...fact(t.mode, modeText(run.mode)),
        ...fact(t.requested_by, run.requested_by || "—"),
        ...fact(t.created_at, fmtTime(run.created_at)),
        ...fact(t.started_at, fmtTime(run.started_at)),
        ...fact(t.finished_at, fmtTime(run.finished_at)),
        ...fact(t.counts, counts(run)),
        ...fact(t.trace_id, run.trace_id));
      summary.hidden = !run.error_summary;
      summary.textContent = run.error_summary ? `${t.error_summary}: ${run.error_summary}` : "";
      const parent = run.parent
        ? el("a", { href: "/admin/runs/" + run.parent.run_id, "data-testid": "parent-link" },
          `${run.parent.run_id} (${statusText(run.parent.status)})`)
        : t.none;
      const kids = run.children.length
        ? el("ul", null, ...run.children.map((c) => el("li", null,
          el("a", { href: "/admin/runs/" + c.run_id, "data-testid": "child-link" },
            `${c.run_id} (${statusText(c.status)})`))))
        : t.none;
      lineage.replaceChildren(...fact(t.parent, parent), ...fact(t.children, kids));
      document.getElementById("sources-body").replaceChildren(...run.sources.map((s) =>
        el("tr", null, el("td", null, s.file_name), el("td", null, s.role),
          el("td", null, s.detected_encoding || "—"), el("td", { class: "num" }, fmtSize(s.size_bytes)))));
      if (retryBtn) retryBtn.hidden = !run.retryable;
      if (cancelBtn) cancelBtn.hidden = !ACTIVE.has(run.status);
      const auto = document.getElementById("run-auto-retry");
      auto.hidden = !run.auto_retry;
      if (run.auto_retry) {
        document.getElementById("run-auto-retry-text").textContent = t.auto_retry_pending
          .replace("{n}", String(run.auto_retry.attempt)).replace("{at}", fmtTime(run.auto_retry.due_at));
      }
    }

    function itemsQuery(cursor) {
      const p = new URLSearchParams({ limit: "100" });
      const st = new FormData(itemFilters).get("status");
      if (st) p.set("status", st);
      if (cursor) p.set("cursor", cursor);
      return `/api/v1/ops/ingestion/runs/${runId}/items?` + p.toString();
    }

    function itemRow(i) {
      return el("tr", { "data-status": i.status },
        el("td", { class: "num" }, i.line_number === null ? "—" : i.line_number),
        el("td", null, i.row_key || "—"),
        el("td", null, i.status),
        el("td", null, i.update_type || "—"),
        el("td", null, i.reason_code || "—"),
        el("td", null, i.message || ""));
    }

    async function loadItems(append) {
      const page = await api("GET", itemsQuery(append ? itemCursor : null));
      const rows = page.items.map(itemRow);
      if (append) itemsBody.append(...rows); else itemsBody.replaceChildren(...rows);
      itemCursor = page.next_cursor;
      itemsMore.hidden = !itemCursor;
      document.getElementById("items-empty").hidden = itemsBody.children.length > 0;
    }

    async function loadEvents() {
      const events = await api("GET", `/api/v1/ops/ingestion/runs/${runId}/events`);
      document.getElementById("events-list").replaceChildren(...events.map((e) => el("li",
        { class: "ev-" + e.event_status },
        el("time", null, fmtTime(e.occurred_at)), " ",
        el("strong", null, e.event_type), " ",
        e.from_status || e.to_status ? `${e.from_status || "—"} → ${e.to_status || "—"} ` : "",
        e.error_code ? el("code", null, e.error_code) : null, " ",
        e.message || "")));
    }

    async function refresh() {
      let run;
      try {
        run = await api("GET", "/api/v1/ops/ingestion/runs/" + runId);
        errorBox.hidden = true;
      } catch (e) {
        showError(errorBox, e.status === 404 ? t.not_found : e);
        if (e.status !== 404) setTimeout(refresh, 2000);
        return;
      }
      renderRun(run);
      if (run.status !== lastStatus) {
        lastStatus = run.status;
        Promise.all([loadItems(false), loadEvents()]).catch((e) => showError(errorBox, e));
      }
      if (ACTIVE.has(run.status)) setTimeout(refresh, 1000);
    }

    itemsMore.addEventListener("click", () => loadItems(true).catch((e) => showError(errorBox, e)));
    itemFilters.addEventListener("change", () => loadItems(false).catch((e) => showError(errorBox, e)));
    if (retryBtn) retryBtn.addEventListener("click", async () => {
      retryBtn.disabled = true;
      try {
        const accepted = await api("POST", `/api/v1/ops/ingestion/runs/${runId}/retry`);
        location.href = "/admin/runs/" + accepted.run_id;
      } catch (e) {
        showError(errorBox, e);
        retryBtn.disabled = false;
      }
    });
    if (cancelBtn) cancelBtn.addEventListener("click", async () => {
      if (!confirm(t.confirm_cancel)) return;
      cancelBtn.disabled = true;
      try {
        await api("POST", `/api/v1/ops/ingestion/runs/${runId}/cancel`);
      } catch (e) { showError(errorBox, e); }
      cancelBtn.disabled = false;
      refresh();
    });
    const autoStop = document.getElementById("run-auto-retry-cancel");
    if (autoStop) autoStop.addEventListener("click", async () => {
      autoStop.disabled = true;
      try {
        await api("POST", `/api/v1/ops/ingestion/runs/${runId}/auto-retry/cancel`);
      } catch (e) { showError(errorBox, e); }
      autoStop.disabled = false;
      refresh();
    });
    refresh();
  }

  // --- dashboards --------------------------------------------------------------------------
  // Everyone sees the dashboards and their feeds; an admin also edits them in place (PATCH a
  // dashboard, POST / PATCH its feeds). A refused write keeps the form as it was and shows the
  // API's own explanation (problem+json detail and field errors) next to it.

  const ENCODINGS = ["auto", "utf-8", "cp932"];
  const FEED_ROLES = ["official", "appearance"];
  const FEED_SOURCES = ["upload", "folder", "url"];

  function option(value, label, selected) {
    const o = el("option", { value }, label);
    if (selected) o.selected = true;
    return o;
  }

  function field(label, control, extra) {
    return el("label", extra || null, label, control);
  }

  // Marks the inputs the API named in errors[] and shows the message; the values stay.
  const CODE_FIELDS = {
    INVALID_SCHEDULE: "schedule", INVALID_LOCATION: "location", LOCATION_REQUIRED: "location",
    INVALID_MAPPING: "mapping", MAPPING_REQUIRED: "mapping", FEED_EXISTS: "name",
  };

  function refuse(form, box, err) {
    showError(box, err);
    const named = (err.errors || []).map((f) => String(f.field || "").split(".").pop());
    if (CODE_FIELDS[err.code]) named.push(CODE_FIELDS[err.code]);
    for (const name of named) {
      const input = name && form.elements.namedItem(name);
      if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
    }
  }

  function clearRefusal(form, box) {
    box.hidden = true;
    box.textContent = "";
    for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  }

  // The feed's state (last poll / success / message / error / run), from the API's "state".
  function stateFields(feed) {
    return feed.state || {};
  }

  function hasState(feed) {
    const s = stateFields(feed);
    return Object.keys(s).some((k) => k.startsWith("last_") && s[k] !== null && s[k] !== "");
  }

  function feedState(feed) {
    const f = stateFields(feed);
    const keys = Object.keys(f).filter((k) => k.startsWith("last_") && f[k] !== null && f[k] !== "");
    if (!keys.length) return null;
    return el("dl", { class: "feed-state", "data-testid": "feed-state" }, ...keys.flatMap((k) => [
      el("dt", null, t["feed_" + k] || k.replace(/_/g, " ")),
      el("dd", { class: /error/.test(k) ? "alert-inline" : null },
        k === "last_run_id" ? el("a", { href: "/admin/runs/" + encodeURIComponent(f[k]) }, f[k])
          : k.endsWith("_at") ? fmtTime(f[k])
            : (typeof f[k] === "object" ? JSON.stringify(f[k]) : f[k])),
    ]));
  }

  function dashboardForm(b, onSaved) {
    const box = el("p", { class: "alert", role: "alert", hidden: "", "data-testid": "dashboard-error" });
    const done = el("span", { class: "saved", role: "status", "data-testid": "dashboard-saved" });
    const name = el("input", { name: "name", value: b.name, required: "", maxlength: "200",
      "data-testid": "dashboard-name" });
    const encoding = el("select", { name: "encoding", "data-testid": "dashboard-encoding" },
      ...ENCODINGS.map((e) => option(e, e, e === b.encoding)));
    const submit = el("button", { type: "submit", class: "btn primary" }, t.save);
    const form = el("form", { class: "edit-form", "data-testid": "dashboard-form" },
      field(t.name, name, { class: "grow" }), field(t.encoding, encoding), submit, done);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearRefusal(form, box);
      done.textContent = "";
      const body = {};
      if (name.value.trim() !== b.name) body.name = name.value.trim();
      if (encoding.value !== b.encoding) body.encoding = encoding.value;
      if (!Object.keys(body).length) { done.textContent = t.no_changes; return; }
      submit.disabled = true;
      try {
        const updated = await api("PATCH", `/api/v1/dashboards/${encodeURIComponent(b.slug)}`, { body });
        onSaved(updated, t.saved);
      } catch (e) {
        refuse(form, box, e);
      } finally {
        submit.disabled = false;
      }
    });
    return el("div", { class: "edit-block" }, el("h3", null, t.edit_dashboard), form, box);
  }

  // Operations: retention per dashboard (an empty box is the default) and manual re-runs.
  const RETENTIONS = ["retention_file_days", "retention_ledger_days", "retention_retired_row_days"];

  function retentionText(ops, key) {
    const n = ops.effective[key];
    return (ops[key] === null ? t.days_default : t.days).replace("{n}", n);
  }

  function operationsForm(b, onSaved) {
    const ops = b.operations;
    const box = el("p", { class: "alert", role: "alert", hidden: "", "data-testid": "operations-error" });
    const done = el("span", { class: "saved", role: "status" });
    const boxes = RETENTIONS.map((key) => el("input", { name: key, type: "number", min: "1",
      max: "36500", step: "1", inputmode: "numeric", value: ops[key] === null ? "" : String(ops[key]),
      // the default's number is known only while the dashboard uses it
      placeholder: ops[key] === null ? retentionText(ops, key) : t.default_value,
      title: t.retention_help, "data-testid": "operations-" + key }));
    const retry = el("input", { type: "checkbox", name: "retry_manual_runs",
      "data-testid": "operations-retry_manual_runs" });
    retry.checked = ops.retry_manual_runs;
    const submit = el("button", { type: "submit", class: "btn primary" }, t.save);
    const form = el("form", { class: "edit-form", "data-testid": "operations-form", novalidate: "" },
      ...RETENTIONS.map((key, i) => field(t[key], boxes[i])),
      el("label", { class: "check" }, retry, t.retry_manual_runs), submit, done);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearRefusal(form, box);
      done.textContent = "";
      // Only what changed; an empty box goes back to the default (null). The API checks the
      // range and names the setting when it refuses.
      const unreadable = boxes.filter((input) => input.validity.badInput);
      if (unreadable.length) {  // the browser gives "" for text that is not a number
        unreadable.forEach((input) => input.setAttribute("aria-invalid", "true"));
        showError(box, new Error(t.retention_help));
        return;
      }
      const operations = {};
      RETENTIONS.forEach((key, i) => {
        const text = boxes[i].value.trim();
        const value = text === "" ? null : Number(text);
        if (value !== ops[key]) operations[key] = value;
      });
      if (retry.checked !== ops.retry_manual_runs) operations.retry_manual_runs = retry.checked;
      if (!Object.keys(operations).length) { done.textContent = t.no_changes; return; }
      submit.disabled = true;
      try {
        const updated = await api("PATCH", `/api/v1/dashboards/${encodeURIComponent(b.slug)}`,
          { body: { operations } });
        onSaved(updated, t.saved);
      } catch (e) {
        refuse(form, box, e);
      } finally {
        submit.disabled = false;
      }
    });
    return el("div", { class: "edit-block" }, el("h3", null, t.operations), form, box);
  }

  function feedForm(b, onSaved) {
    const box = el("p", { class: "alert", role: "alert", hidden: "", "data-testid": "feed-error" });
    const name = el("input", { name: "name", required: "", maxlength: "64", "data-testid": "feed-name" });
    const role = el("select", { name: "role", "data-testid": "feed-role" },
      ...FEED_ROLES.map((r) => option(r, t["feed_role_" + r] || r, r === "official")));
    const source = el("select", { name: "source", "data-testid": "feed-source" },
      ...FEED_SOURCES.map((s) => option(s, t["feed_source_" + s] || s, s === "folder")));
    const location = el("input", { name: "location", maxlength: "4096", "data-testid": "feed-location",
      placeholder: t.location_help });
    const schedule = el("input", { name: "schedule", maxlength: "64", "data-testid": "feed-schedule",
      placeholder: "*/15 7-19 * * mon-fri", spellcheck: "false", autocomplete: "off" });
    const enabled = el("input", { type: "checkbox", name: "enabled", "data-testid": "feed-enabled" });
    enabled.checked = true;
    const mapping = el("textarea", { name: "mapping", rows: "3", "data-testid": "feed-mapping",
      placeholder: '{"key_columns": {"FSEIBAN": "製番", …}}', spellcheck: "false" });
    const mappingLabel = field(t.mapping, mapping, { class: "wide", hidden: "" });
    const submit = el("button", { type: "submit", class: "btn primary", "data-testid": "feed-add" }, t.add);
    const form = el("form", { class: "edit-form", "data-testid": "feed-form" },
      field(t.name, name), field(t.role, role), field(t.source, source),
      field(t.location, location, { class: "grow" }),
      field(t.schedule + " (cron)", schedule),
      el("label", { class: "check" }, enabled, t.enabled),
      mappingLabel, submit);

    function sync() {
      const upload = source.value === "upload";
      location.disabled = upload;
      schedule.disabled = upload;
      mappingLabel.hidden = role.value !== "appearance";
    }
    role.addEventListener("change", sync);
    source.addEventListener("change", sync);
    sync();

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearRefusal(form, box);
      const body = { name: name.value, role: role.value, source: source.value, enabled: enabled.checked };
      if (!location.disabled && location.value.trim()) body.location = location.value.trim();
      if (!schedule.disabled && schedule.value.trim()) body.schedule = schedule.value.trim();
      if (role.value === "appearance" && mapping.value.trim()) {
        try { body.mapping = JSON.parse(mapping.value); } catch (e) {
          mapping.setAttribute("aria-invalid", "true");
          showError(box, new Error(`${t.mapping}: ${t.invalid_json}`));
          return;
        }
      }
      submit.disabled = true;
      try {
        const feed = await api("POST", `/api/v1/dashboards/${encodeURIComponent(b.slug)}/feeds`, { body });
        onSaved(null, `${t.saved}: ${feed.name}`);
      } catch (e) {
        refuse(form, box, e);
      } finally {
        submit.disabled = false;
      }
    });
    const details = el("details", { class: "edit-block", "data-testid": "add-feed" },
      el("summary", { class: "btn" }, t.add_feed), form, box);
    return details;
  }

  function feedRows(b, f, showState, onSaved) {
    const path = `/api/v1/dashboards/${encodeURIComponent(b.slug)}/feeds/${encodeURIComponent(f.id)}`;
    const row = el("tr", { "data-feed-id": f.id, "data-feed-name": f.name, "data-testid": "feed-row",
      "data-enabled": String(f.enabled) });
    const cells = [
      el("td", null, f.name), el("td", { class: "nw" }, t["feed_role_" + f.role] || f.role),
      el("td", { class: "nw" }, t["feed_source_" + f.source] || f.source),
      el("td", { class: "loc" }, f.location || "—"),
      el("td", { class: "nw" }, el("code", null, f.schedule || "—")),
    ];
    const rows = [row];
    if (!isAdmin) {
      cells.push(el("td", { class: "nw" }, f.enabled ? t.yes : t.no));
      if (showState) cells.push(el("td", null, feedState(f)));
      row.append(...cells);
      return rows;
    }
    // enabled: a switch that saves at once; on refusal it flips back and says why
    const toggle = el("input", { type: "checkbox", "data-testid": "feed-enabled-toggle",
      "aria-label": `${f.name}: ${t.enabled}` });
    toggle.checked = f.enabled;
    const toggleText = el("span", null, f.enabled ? t.yes : t.no);
    const rowError = el("p", { class: "alert", role: "alert", hidden: "", "data-testid": "feed-row-error" });
    toggle.addEventListener("change", async () => {
      const want = toggle.checked;
      toggle.disabled = true;
      rowError.hidden = true;
      try {
        await api("PATCH", path, { body: { enabled: want } });
        onSaved(null, `${t.saved}: ${f.name}`);
      } catch (e) {
        toggle.checked = !want;
        toggle.disabled = false;
        editRow.hidden = false;
        showError(rowError, e);
      }
    });
    cells.push(el("td", { class: "nw" }, el("label", { class: "check" }, toggle, toggleText)));
    if (showState) cells.push(el("td", null, feedState(f)));

    // location and schedule: an edit row under the feed
    const box = el("p", { class: "alert", role: "alert", hidden: "", "data-testid": "feed-edit-error" });
    const location = el("input", { name: "location", value: f.location || "", maxlength: "4096",
      "data-testid": "feed-edit-location", disabled: f.source === "upload" ? "" : null });
    const schedule = el("input", { name: "schedule", value: f.schedule || "", maxlength: "64",
      "data-testid": "feed-edit-schedule", spellcheck: "false", autocomplete: "off",
      disabled: f.source === "upload" ? "" : null });
    const save = el("button", { type: "submit", class: "btn primary", "data-testid": "feed-save" }, t.save);
    const close = el("button", { type: "button", class: "btn" }, t.close);
    const form = el("form", { class: "edit-form" },
      field(t.location, location, { class: "grow" }), field(t.schedule + " (cron)", schedule), save, close);
    const editRow = el("tr", { class: "feed-edit", hidden: "", "data-testid": "feed-edit" },
      el("td", { colspan: String(cells.length + 1) }, form, box, rowError));
    const edit = el("button", { type: "button", class: "btn small", "data-testid": "feed-edit-open",
      "aria-expanded": "false" }, t.edit);
    edit.addEventListener("click", () => {
      editRow.hidden = !editRow.hidden;
      edit.setAttribute("aria-expanded", String(!editRow.hidden));
      if (!editRow.hidden && !location.disabled) location.focus();
    });
    close.addEventListener("click", () => {
      editRow.hidden = true;
      edit.setAttribute("aria-expanded", "false");
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      clearRefusal(form, box);
      rowError.hidden = true;
      const body = {};
      const loc = location.value.trim() || null;
      const sch = schedule.value.trim() || null;
      if (!location.disabled && loc !== (f.location || null)) body.location = loc;
      if (!schedule.disabled && sch !== (f.schedule || null)) body.schedule = sch;
      if (!Object.keys(body).length) { editRow.hidden = true; return; }
      save.disabled = true;
      try {
        await api("PATCH", path, { body });
        onSaved(null, `${t.saved}: ${f.name}`);
      } catch (e) {
        refuse(form, box, e);
      } finally {
        save.disabled = false;
      }
    });
    cells.push(el("td", { class: "nw" }, edit));
    row.append(...cells);
    rows.push(editRow);
    return rows;
  }

  function dashboardSection(b, feeds, lastOk, flash, reload) {
    const showState = feeds.some(hasState);
    const head = el("div", { class: "dash-head" },
      el("h2", null, el("span", { "data-testid": "dashboard-title" }, b.name), " ", el("code", null, b.slug)),
      ...(b.kind === "production_schedule"
        ? [
          el("a", { class: "btn primary", href: "/kiosk/" + encodeURIComponent(b.slug) }, t.open_kiosk),
          el("a", { class: "btn", href: "/admin/load/" + encodeURIComponent(b.slug), "data-testid": "open-load" }, t.load_title),
          el("a", { class: "btn", href: "/signage/" + encodeURIComponent(b.slug), "data-testid": "open-signage" }, t.signage_title),
        ]
        : []));
    const facts = el("dl", { class: "facts" },
      el("dt", null, t.kind), el("dd", null, b.kind),
      el("dt", null, t.ingest_mode), el("dd", null, b.ingest_mode),
      el("dt", null, t.encoding), el("dd", { "data-testid": "dashboard-encoding-value" }, b.encoding),
      el("dt", null, t.rows_active), el("dd", null, b.active_rows),
      el("dt", null, t.rows_retired), el("dd", null, b.retired_rows),
      el("dt", null, t.last_success), el("dd", null, fmtTime(lastOk)),
      ...RETENTIONS.flatMap((key) => [el("dt", null, t[key]),
        el("dd", { "data-testid": "operations-value-" + key }, retentionText(b.operations, key))]),
      el("dt", null, t.retry_manual_runs),
      el("dd", { "data-testid": "operations-value-retry_manual_runs" },
        b.operations.retry_manual_runs ? t.yes : t.no));
    const headers = [t.name, t.role, t.source, t.location, t.schedule, t.enabled];
    if (showState) headers.push(t.feed_state);
    if (isAdmin) headers.push("");
    const table = el("table", { class: "feeds" },
      el("thead", null, el("tr", null, ...headers.map((h) => el("th", null, h)))),
      el("tbody", null, ...feeds.flatMap((f) => feedRows(b, f, showState, reload))));
    const section = el("section", { class: "dash", "data-slug": b.slug },
      head, flash ? el("p", { class: "flash", role: "status", "data-testid": "flash" }, flash) : null,
      facts);
    if (isAdmin) section.append(dashboardForm(b, reload), operationsForm(b, reload));
    section.append(el("h3", null, t.feeds),
      feeds.length ? el("div", { class: "table-wrap" }, table) : el("p", { class: "muted" }, t.no_feeds));
    if (isAdmin) section.append(feedForm(b, reload));
    return section;
  }

  async function initDashboards() {
    const list = document.getElementById("dashboards-list");
    const errorBox = document.getElementById("dashboards-error");
    let lastOk = new Map();

    async function build(b, flash) {
      const feeds = (await api("GET", `/api/v1/dashboards/${encodeURIComponent(b.slug)}/feeds`)).items;
      let section = null;
      // after a successful write: redraw this dashboard from the API (the saved truth)
      const reload = async (updated, message) => {
        try {
          const fresh = updated || await api("GET", `/api/v1/dashboards/${encodeURIComponent(b.slug)}`);
          const next = await build(fresh, message);
          section.replaceWith(next);
          errorBox.hidden = true;
        } catch (e) { showError(errorBox, e); }
      };
      section = dashboardSection(b, feeds, lastOk.get(b.slug), flash, reload);
      return section;
    }

    try {
      const [boards, latest] = await Promise.all([
        loadDashboards(), api("GET", "/api/v1/ops/ingestion/latest")]);
      lastOk = new Map(latest.dashboards.map((d) => [d.dashboard, d.last_success_at]));
      list.replaceChildren(...await Promise.all(boards.map((b) => build(b, null))));
    } catch (e) {
      showError(errorBox, e);
    }
  }

  if (document.getElementById("runs-body")) initRuns();
  else if (config.run_id) initRun();
  else if (document.getElementById("dashboards-list")) initDashboards();
})();
