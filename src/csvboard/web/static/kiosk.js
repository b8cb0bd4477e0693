// csvboard kiosk board: the production schedule by resource, with completion, note, due date
// and machining-order writes that survive a flaky network.
//
// Writes are optimistic: the step shows the new value at once, marked "pending" until the
// server confirms it. A network error, a time-out or a 5xx keeps the value and marks the write
// "failed" with a retry button (every write is an idempotent PUT of the intended value, never a
// toggle, so retrying is always safe). Unconfirmed writes are also kept in localStorage, so a
// reload does not lose them either. A 4xx (the server refused the value) reverts to the
// server's state and says why.
//
// Text from the server is only ever set with textContent (never innerHTML).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const slug = config.slug;
  const board = document.getElementById("board");
  const canWrite = board.getAttribute("data-can-write") === "true";
  const base = "/api/v1/schedules/" + encodeURIComponent(slug);
  const STORE_KEY = "csvboard.kiosk.unsaved." + slug;
  const WRITE_TIMEOUT_MS = 15000;
  const FIELDS = {
    completion: "completion",
    note: "note",
    due_date: "due-date",
    order: "order",
  };

  const byId = new Map();     // row id -> server row
  let orderIds = [];          // row ids in kiosk order, as listed
  const stepEls = new Map();  // row id -> step element parts
  const writes = new Map();   // "id:field" -> {id, field, value, state, message}
  let summary = null;
  let completion = "all";
  let query = "";
  let signature = "";

  // --- helpers -----------------------------------------------------------------------------

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (res.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("signed out");
    }
    if (!res.ok) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(`${res.status} ${detail}`);
    }
    return res.json();
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function fmtTime(iso) {
    if (!iso) return t.never;
    return new Date(iso).toLocaleString(config.lang === "en" ? "en-GB" : "ja-JP", {
      timeZone: config.timezone, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    });
  }

  function showError(message) {
    const box = document.getElementById("kiosk-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // --- the effective view of a step (server row + writes not yet confirmed) ----------------

  function pendingValue(id, field) {
    const w = writes.get(id + ":" + field);
    return w && (w.state === "pending" || w.state === "failed") ? w : null;
  }

  function view(id) {
    const row = byId.get(id);
    const v = {
      completed: row.completed,
      note: row.note || "",
      due_date: row.due_date || "",
      order: row.order ? row.order.order_number : null,
    };
    const c = pendingValue(id, "completion");
    if (c) v.completed = c.value === "complete" || (row.external_completed && c.value !== "complete");
    const n = pendingValue(id, "note");
    if (n) v.note = n.value;
    const d = pendingValue(id, "due_date");
    if (d) v.due_date = d.value;
    const o = pendingValue(id, "order");
    if (o) v.order = o.value;
    return v;
  }

  // --- writes --------------------------------------------------------------------------------

  function persist() {
    const keep = [];
    for (const w of writes.values()) {
      if (w.state === "pending" || w.state === "failed") keep.push({ id: w.id, field: w.field, value: w.value });
    }
    try {
      if (keep.length) localStorage.setItem(STORE_KEY, JSON.stringify(keep));
      else localStorage.removeItem(STORE_KEY);
    } catch (e) { /* storage full or disabled: the on-screen state still shows it */ }
  }

  function restore() {
    let saved = [];
    try { saved = JSON.parse(localStorage.getItem(STORE_KEY) || "[]"); } catch (e) { saved = []; }
    for (const s of saved) {
      if (s && s.id && s.field in FIELDS) {
        writes.set(s.id + ":" + s.field, { id: s.id, field: s.field, value: s.value, state: "failed", message: "" });
      }
    }
  }

  function body(field, id, value) {
    if (field === "completion") return { intent: value };
    if (field === "note") return { note: value };
    if (field === "due_date") return { due_date: value || null };
    const row = byId.get(id);
    return { resource_cd: row.row_data.FSIGENCD || "", order_number: value };
  }

  async function send(id, field, value) {
    const key = id + ":" + field;
    const w = { id, field, value, state: "pending", message: "" };
    writes.set(key, w);
    persist();
    update(id);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), WRITE_TIMEOUT_MS);
    let res = null;
    try {
      res = await fetch(`${base}/rows/${id}/${FIELDS[field]}`, {
        method: "PUT",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRF-Token": cookie("csvboard_csrf"),
        },
        body: JSON.stringify(body(field, id, value)),
        signal: controller.signal,
      });
    } catch (e) {
      res = null;
    } finally {
      clearTimeout(timer);
    }
    if (writes.get(key) !== w) return; // a newer write of the same field took over
    if (res && res.ok) {
      const row = await res.json().catch(() => null);
      writes.delete(key);
      if (row && row.id) byId.set(id, row);
      persist();
      update(id);
      if (field === "completion" || field === "order") scheduleQuietReload();
      return;
    }
    if (res && res.status >= 400 && res.status < 500 && ![401, 403, 408, 429].includes(res.status)) {
      let detail = res.statusText;
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      w.state = "refused";
      w.message = detail;
    } else {
      w.state = "failed";
      w.message = res ? `HTTP ${res.status}` : "";
    }
    persist();
    update(id);
  }

  function retry(id) {
    for (const w of Array.from(writes.values())) {
      if (w.id === id && w.state === "failed") send(id, w.field, w.value);
    }
  }

  function dismiss(id) {
    for (const [key, w] of Array.from(writes.entries())) {
      if (w.id === id && w.state === "refused") writes.delete(key);
    }
    update(id);
  }

  window.addEventListener("beforeunload", (ev) => {
    for (const w of writes.values()) {
      if (w.state === "pending" || w.state === "failed") {
        ev.preventDefault();
        ev.returnValue = t.unsaved_leave;
        return;
      }
    }
  });

  // --- one step ------------------------------------------------------------------------------

  function buildStep(id) {
    const row = byId.get(id);
    const d = row.row_data;
    const parts = {};
    parts.toggle = canWrite
      ? el("button", { type: "button", class: "toggle", "data-testid": "toggle" })
      : el("span", { class: "toggle ro", "data-testid": "toggle" });
    parts.toggleMark = el("span", { class: "mark", "aria-hidden": "true" }, "✓");
    parts.toggleLabel = el("span", { class: "toggle-label" });
    parts.toggle.append(parts.toggleMark, parts.toggleLabel);
    const info = el("div", { class: "info" },
      el("div", { class: "line1" },
        el("span", { class: "seiban", "data-testid": "fseiban" }, d.FSEIBAN || ""),
        row.machine_name ? el("span", { class: "machine" }, row.machine_name) : null,
        el("span", { class: "kojun" }, `${t.process_order} ${d.FKOJUN || ""}`)),
      el("div", { class: "line2" },
        el("span", { class: "hincd", "data-testid": "fhincd" }, d.FHINCD || ""),
        el("span", { class: "hinmei", "data-testid": "fhinmei" }, d.FHINMEI || ""),
        d.FSIGENSHOYORYO ? el("span", { class: "hours" }, `${t.hours} ${d.FSIGENSHOYORYO}`) : null));
    const edits = el("div", { class: "edits" });
    if (canWrite) {
      parts.order = el("select", { class: "order", "aria-label": t.order, "data-testid": "order" },
        el("option", { value: "" }, "—"),
        ...Array.from({ length: 10 }, (_, i) => el("option", { value: String(i + 1) }, String(i + 1))));
      parts.due = el("input", { type: "date", class: "due", "aria-label": t.due_date, "data-testid": "due" });
      parts.note = el("input", {
        type: "text", class: "note", maxlength: "100", "aria-label": t.note,
        placeholder: t.note, "data-testid": "note", enterkeyhint: "done",
      });
      edits.append(
        el("label", { class: "f-order" }, el("span", null, t.order), parts.order),
        el("label", { class: "f-due" }, el("span", null, t.due_date), parts.due),
        el("label", { class: "f-note" }, el("span", null, t.note), parts.note));
      parts.toggle.addEventListener("click", () => {
        send(id, "completion", view(id).completed ? "incomplete" : "complete");
      });
      parts.order.addEventListener("change", () => {
        send(id, "order", parts.order.value ? Number(parts.order.value) : null);
      });
      parts.due.addEventListener("change", () => send(id, "due_date", parts.due.value));
      parts.note.addEventListener("change", () => send(id, "note", parts.note.value.replace(/[\r\n]+/g, " ")));
      parts.note.addEventListener("keydown", (ev) => { if (ev.key === "Enter") parts.note.blur(); });
    } else {
      parts.orderText = el("span", { class: "ro-val" });
      parts.dueText = el("span", { class: "ro-val" });
      parts.noteText = el("span", { class: "ro-val note-text", "data-testid": "note-text" });
      edits.append(
        el("span", { class: "f-order" }, el("span", null, t.order + " "), parts.orderText),
        el("span", { class: "f-due" }, el("span", null, t.due_date + " "), parts.dueText),
        el("span", { class: "f-note" }, el("span", null, t.note + " "), parts.noteText));
    }
    parts.state = el("div", { class: "write-state", "aria-live": "polite", "data-testid": "write-state" });
    parts.root = el("article", {
      class: "step", "data-row-id": id, "data-testid": "step",
      "data-fseiban": d.FSEIBAN || "", "data-fhincd": d.FHINCD || "", "data-fkojun": d.FKOJUN || "",
    }, parts.toggle, info, edits, parts.state);
    stepEls.set(id, parts);
    update(id);
    return parts.root;
  }

  function setValue(input, value) {
    if (document.activeElement !== input && input.value !== value) input.value = value;
  }

  function update(id) {
    const parts = stepEls.get(id);
    if (!parts || !byId.has(id)) return;
    const row = byId.get(id);
    const v = view(id);
    parts.root.classList.toggle("done", v.completed);
    parts.root.setAttribute("data-completed", v.completed ? "true" : "false");
    parts.toggle.setAttribute("aria-pressed", v.completed ? "true" : "false");
    parts.toggleLabel.textContent = v.completed ? t.complete : (canWrite ? t.mark_complete : "");
    if (canWrite) {
      parts.toggle.title = v.completed ? t.mark_incomplete : t.mark_complete;
      setValue(parts.order, v.order === null ? "" : String(v.order));
      parts.order.disabled = v.completed;
      setValue(parts.due, v.due_date);
      setValue(parts.note, v.note);
    } else {
      parts.orderText.textContent = v.order === null ? "—" : String(v.order);
      parts.dueText.textContent = v.due_date || "—";
      parts.noteText.textContent = v.note || "—";
    }
    // the step's write state: pending, failed (retry), refused (why)
    let state = "";
    let message = "";
    for (const w of writes.values()) {
      if (w.id !== id) continue;
      if (w.state === "failed") state = "failed";
      else if (w.state === "refused" && state !== "failed") { state = "refused"; message = w.message; }
      else if (w.state === "pending" && !state) state = "pending";
    }
    parts.root.setAttribute("data-write", state || "ok");
    const children = [];
    if (state === "pending") children.push(el("span", { class: "pending" }, t.pending));
    if (state === "failed") {
      const btn = el("button", { type: "button", class: "btn retry", "data-testid": "retry-write" }, t.retry_write);
      btn.addEventListener("click", () => retry(id));
      children.push(el("span", { class: "failed" }, t.write_failed), btn);
    }
    if (state === "refused") {
      const btn = el("button", { type: "button", class: "btn small" }, "×");
      btn.addEventListener("click", () => dismiss(id));
      children.push(el("span", { class: "failed" }, `${t.write_refused}: ${message}`), btn);
    }
    parts.state.replaceChildren(...children);
    void row;
  }

  // --- the board -----------------------------------------------------------------------------

  function groups() {
    const byResource = new Map();
    for (const id of orderIds) {
      const row = byId.get(id);
      const code = row.row_data.FSIGENCD || "";
      if (!byResource.has(code)) byResource.set(code, []);
      byResource.get(code).push(id);
    }
    const codes = Array.from(byResource.keys()).sort((a, b) => a.localeCompare(b, "ja", { numeric: true }));
    return codes.map((code) => {
      const ids = byResource.get(code);
      // machining order: steps with an order number first (1..10), then the kiosk sort
      const pos = new Map(ids.map((id, i) => [id, i]));
      ids.sort((a, b) => {
        const oa = byId.get(a).order ? byId.get(a).order.order_number : 99;
        const ob = byId.get(b).order ? byId.get(b).order.order_number : 99;
        return oa - ob || pos.get(a) - pos.get(b);
      });
      return { code, ids };
    });
  }

  function resourceProgress(code) {
    if (summary) {
      const r = summary.by_resource.find((x) => x.resource_cd === code);
      if (r) return r;
    }
    return null;
  }

  function bar(done, total, testid) {
    const fill = el("div", { class: "fill" });
    fill.style.width = (total ? Math.round((done / total) * 100) : 0) + "%";
    return el("div", { class: "bar", "data-testid": testid }, fill);
  }

  function renderSummary() {
    if (!summary) return;
    document.getElementById("overall-text").textContent = `${summary.completed}/${summary.total}`;
    document.getElementById("overall-fill").style.width =
      (summary.total ? Math.round((summary.completed / summary.total) * 100) : 0) + "%";
    for (const section of board.querySelectorAll(".resource")) {
      const p = resourceProgress(section.getAttribute("data-resource"));
      const text = section.querySelector(".res-count");
      const fill = section.querySelector(".res-bar .fill");
      if (p && text && fill) {
        text.textContent = `${p.completed}/${p.total}`;
        fill.style.width = (p.total ? Math.round((p.completed / p.total) * 100) : 0) + "%";
      }
    }
  }

  function render() {
    const gs = groups();
    const sig = JSON.stringify(gs);
    if (sig === signature) {
      for (const id of orderIds) update(id);
      renderSummary();
      return;
    }
    signature = sig;
    stepEls.clear();
    const sections = gs.map(({ code, ids }) => {
      const first = byId.get(ids[0]);
      const p = resourceProgress(code);
      return el("section", { class: "resource", "data-resource": code, "data-testid": "resource" },
        el("header", { class: "res-head" },
          el("h2", null, el("span", { class: "res-code" }, code || "—"), " ",
            el("span", { class: "res-name" }, first.row_data.FSIGENMEI || "")),
          el("span", { class: "res-count" }, p ? `${p.completed}/${p.total}` : ""),
          el("div", { class: "bar res-bar" }, el("div", { class: "fill" }))),
        el("div", { class: "steps" }, ...ids.map(buildStep)));
    });
    board.replaceChildren(...sections);
    if (!gs.length) board.append(el("p", { class: "muted empty" }, t.no_steps));
    renderSummary();
  }

  async function loadRows() {
    const rows = [];
    let cursor = null;
    do {
      const p = new URLSearchParams({ limit: "2000", completion });
      if (query) p.set("q", query);
      if (cursor) p.set("cursor", cursor);
      const page = await getJson(`${base}/rows?` + p.toString());
      rows.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    return rows;
  }

  async function loadSummary() {
    try {
      summary = await getJson(`${base}/summary`);
      renderSummary();
    } catch (e) { /* the board still works without the bars */ }
  }

  async function loadLatest() {
    try {
      const latest = await getJson("/api/v1/ops/ingestion/latest");
      const mine = latest.dashboards.find((d) => d.dashboard === slug);
      document.getElementById("last-success").textContent = fmtTime(mine && mine.last_success_at);
    } catch (e) { /* keep what is shown */ }
  }

  let loading = null;
  async function load() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const [rows] = await Promise.all([loadRows(), loadSummary(), loadLatest()]);
        byId.clear();
        for (const r of rows) byId.set(r.id, r);
        orderIds = rows.map((r) => r.id);
        showError("");
        render();
      } catch (e) {
        showError(`${t.load_failed}: ${e.message}`);
      } finally {
        document.getElementById("kiosk-loading").hidden = true;
        loading = null;
      }
    })();
    return loading;
  }

  let quietTimer = null;
  function scheduleQuietReload() {
    clearTimeout(quietTimer);
    quietTimer = setTimeout(() => {
      const a = document.activeElement;
      if (a && board.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT")) {
        scheduleQuietReload();
        return;
      }
      load();
    }, 800);
  }

  // --- controls ------------------------------------------------------------------------------

  const search = document.getElementById("kiosk-search");
  let searchTimer = null;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      query = search.value.trim().replace(/[\s、，]+/g, ",").replace(/^,+|,+$/g, "");
      load();
    }, 300);
  });
  for (const btn of document.querySelectorAll("#kiosk-filter [data-completion]")) {
    btn.addEventListener("click", () => {
      completion = btn.getAttribute("data-completion");
      for (const b of document.querySelectorAll("#kiosk-filter [data-completion]")) {
        b.setAttribute("aria-pressed", b === btn ? "true" : "false");
      }
      load();
    });
  }
  document.getElementById("kiosk-refresh").addEventListener("click", () => load());

  getJson("/api/v1/dashboards/" + encodeURIComponent(slug))
    .then((d) => { document.getElementById("kiosk-name").textContent = d.name; })
    .catch(() => {});
  restore();
  load();
  // New exports arrive several times a day: refresh quietly every 30 s.
  setInterval(() => scheduleQuietReload(), 30000);
})();
