// csvboard admin console: run history, run detail, upload-and-ingest, dashboards.
// All data comes from the JSON API. Text from the server is only ever set with textContent
// (never innerHTML), so a CSV cell or a message can never become markup.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const isAdmin = config.role === "admin";
  const ACTIVE = new Set(["queued", "running"]);

  // --- helpers -----------------------------------------------------------------------------

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

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
      const err = new Error((doc && (doc.detail || doc.title)) || res.statusText);
      err.status = res.status;
      err.code = doc && doc.code;
      throw err;
    }
    return doc;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "href") node.setAttribute("href", v);
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
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

  function setBar(fill, value, status) {
    fill.style.width = Math.round(value * 100) + "%";
    fill.className = "fill" + (status ? " st-" + status : "");
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

    async function refresh() {
      clearTimeout(timer);
      try {
        const page = await api("GET", query(null));
        const ids = new Set(page.items.map((r) => r.run_id));
        const tail = runs.filter((r) => !ids.has(r.run_id)
          && page.items.length && r.created_at < page.items[page.items.length - 1].created_at);
        runs = page.items.concat(tail);
        if (!tail.length) nextCursor = page.next_cursor;
        errorBox.hidden = true;
        render();
      } catch (e) {
        showError(errorBox, e);
      }
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
    if (isAdmin) initUpload();
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
    refresh();
  }

  // --- dashboards --------------------------------------------------------------------------

  async function initDashboards() {
    const list = document.getElementById("dashboards-list");
    const errorBox = document.getElementById("dashboards-error");
    try {
      const [boards, latest] = await Promise.all([
        loadDashboards(), api("GET", "/api/v1/ops/ingestion/latest")]);
      const lastOk = new Map(latest.dashboards.map((d) => [d.dashboard, d.last_success_at]));
      const sections = [];
      for (const b of boards) {
        const feeds = (await api("GET", `/api/v1/dashboards/${encodeURIComponent(b.slug)}/feeds`)).items;
        const head = el("div", { class: "dash-head" },
          el("h2", null, `${b.name} `, el("code", null, b.slug)),
          b.kind === "production_schedule"
            ? el("a", { class: "btn primary", href: "/kiosk/" + encodeURIComponent(b.slug) }, t.open_kiosk)
            : null);
        const facts = el("dl", { class: "facts" },
          el("dt", null, t.kind), el("dd", null, b.kind),
          el("dt", null, t.ingest_mode), el("dd", null, b.ingest_mode),
          el("dt", null, t.encoding), el("dd", null, b.encoding),
          el("dt", null, t.rows_active), el("dd", null, b.active_rows),
          el("dt", null, t.rows_retired), el("dd", null, b.retired_rows),
          el("dt", null, t.last_success), el("dd", null, fmtTime(lastOk.get(b.slug))));
        const table = el("table", null,
          el("thead", null, el("tr", null, ...[t.name, t.role, t.source, t.location, t.schedule, t.enabled]
            .map((h) => el("th", null, h)))),
          el("tbody", null, ...feeds.map((f) => el("tr", null,
            el("td", null, f.name), el("td", null, f.role), el("td", null, f.source),
            el("td", null, f.location || "—"), el("td", null, f.schedule || "—"),
            el("td", null, f.enabled ? t.yes : t.no)))));
        sections.push(el("section", { class: "dash", "data-slug": b.slug }, head, facts,
          el("h3", null, t.feeds), el("div", { class: "table-wrap" }, table)));
      }
      list.replaceChildren(...sections);
    } catch (e) {
      showError(errorBox, e);
    }
  }

  if (document.getElementById("runs-body")) initRuns();
  else if (config.run_id) initRun();
  else if (document.getElementById("dashboards-list")) initDashboards();
})();
