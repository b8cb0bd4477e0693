// csvboard kiosk board: a terminal's scope of the production schedule (resources and/or
// registered 製番, kept in localStorage), paged from the server in kiosk order, with
// completion, note, due date, processing type and machining-order writes that survive a
// flaky network.
//
// Size: the board never lists a whole dashboard (a real schedule is 60,000 steps). It asks for
// a scope or a search, fetches 50 steps a page (keyset cursor) as the worker scrolls, and keeps
// only the pages near the viewport in the DOM: a page scrolled far away is replaced by an empty
// block of its measured height, so the element count stays bounded whatever the scope's size.
//
// Writes are optimistic: the step shows the new value at once, marked "pending" until the
// server confirms it. A network error, a time-out or a 5xx keeps the value and marks the write
// "failed" with a retry button (every write is an idempotent PUT of the intended value, never a
// toggle, so retrying is always safe). Unconfirmed writes are also kept in localStorage, so a
// reload does not lose them either. A 4xx (the server refused the value) reverts to the
// server's state and says why. A write re-renders only its own step.
//
// Other terminals' changes arrive by a poll that re-reads the steps on screen by id (ETag:
// 304 when nothing changed); a poll's answer never overrides a write sent or confirmed since the
// poll was asked, nor one still pending here.
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
  const SCOPE_KEY = "csvboard.kiosk.scope." + slug;
  const FILTER_KEY = "csvboard.kiosk.filters." + slug;
  const WRITE_TIMEOUT_MS = 15000;
  const PAGE_SIZE = 50;
  const POLL_MS = 10000;
  const SEARCH_DEBOUNCE_MS = 120; // one request per pause in typing, not one per key
  const KEEP_MARGIN = "1500px 0px"; // pages within this distance of the viewport stay rendered
  const FIELDS = {
    completion: "completion",
    note: "note",
    due_date: "due-date",
    processing: "processing-type",
    order: "order",
  };

  const byId = new Map();     // row id -> server row
  const pages = [];           // {ids, block, rendered, height}
  const stepEls = new Map();  // row id -> step element parts (rendered steps only)
  const writes = new Map();   // "id:field" -> {id, field, value, state, message}
  const epochs = new Map();   // row id -> counter bumped by each write sent or confirmed
  let scope = loadJson(SCOPE_KEY, { resources: [], seibans: [] });
  let filters = loadJson(FILTER_KEY, { completion: "all", has_note: false, has_due_date: false });
  let query = "";
  let nextCursor = null;
  let generation = 0;         // bumped by every reload of the list: late pages of an old one are dropped
  let loadingMore = false;
  let knownResources = [];
  let registered = { version: 0, limit: 100, items: [] };
  let registeredTag = null;
  let processingTypes = [];
  let lastSuccess;            // undefined until first seen
  let lookupTag = null;       // ETag of the poll's last answer (If-None-Match)

  // --- helpers -----------------------------------------------------------------------------

  function loadJson(key, fallback) {
    try {
      const v = JSON.parse(localStorage.getItem(key) || "null");
      if (v && typeof v === "object") return Object.assign({}, fallback, v);
    } catch (e) { /* unreadable: the default */ }
    return Object.assign({}, fallback);
  }

  function saveJson(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* storage full */ }
  }

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [k, ...v] = part.trim().split("=");
      if (k === name) return decodeURIComponent(v.join("="));
    }
    return "";
  }

  async function problemText(res) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    return detail;
  }

  async function request(path, opts) {
    const o = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, o.headers || {});
    // no-store: the board keeps its own ETags (If-None-Match / If-Match); the browser's cache
    // must neither answer for the server nor revalidate with a tag of its own
    const res = await fetch(path, Object.assign({ credentials: "same-origin", cache: "no-store" }, o, { headers }));
    if (res.status === 401) {
      location.href = "/login?next=" + encodeURIComponent(location.pathname);
      throw new Error("signed out");
    }
    return res;
  }

  async function getJson(path) {
    const res = await request(path);
    if (!res.ok) throw new Error(`${res.status} ${await problemText(res)}`);
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

  function isoDay(offset) {
    // The kiosk's own calendar day in the factory's time zone, plus offset days.
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: config.timezone, year: "numeric", month: "2-digit", day: "2-digit" })
      .format(new Date()).split("-").map(Number);
    const d = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2] + offset));
    return d.toISOString().slice(0, 10);
  }

  function showError(message) {
    const box = document.getElementById("kiosk-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function scopeParams() {
    const p = new URLSearchParams();
    for (const r of scope.resources) p.append("resource", r);
    for (const s of scope.seibans) p.append("seiban", s);
    return p;
  }

  function hasScope() {
    return scope.resources.length > 0 || scope.seibans.length > 0;
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
      processing: row.processing_type || "",
      order: row.order ? row.order.order_number : null,
    };
    const c = pendingValue(id, "completion");
    if (c) v.completed = c.value === "complete" || (row.external_completed && c.value !== "complete");
    for (const field of ["note", "due_date", "processing", "order"]) {
      const w = pendingValue(id, field);
      if (w) v[field] = w.value;
    }
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
    if (field === "processing") return { processing_type: value || null };
    const row = byId.get(id);
    return { resource_cd: row.row_data.FSIGENCD || "", order_number: value };
  }

  function bump(id) {
    epochs.set(id, (epochs.get(id) || 0) + 1);
  }

  async function send(id, field, value) {
    const key = id + ":" + field;
    const w = { id, field, value, state: "pending", message: "" };
    writes.set(key, w);
    bump(id);
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
      bump(id);
      if (row && row.id) byId.set(id, row);
      persist();
      update(id);
      if (field === "completion") scheduleSummary();
      return;
    }
    if (res && res.status >= 400 && res.status < 500 && ![401, 403, 408, 429].includes(res.status)) {
      w.state = "refused";
      w.message = await problemText(res);
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

  function chip(testid, label, onClick) {
    const value = el("span", { class: "chip-value" });
    const node = canWrite
      ? el("button", { type: "button", class: "chip", "data-testid": testid }, el("span", { class: "chip-label" }, label), value)
      : el("span", { class: "chip ro", "data-testid": testid }, el("span", { class: "chip-label" }, label), value);
    if (canWrite) node.addEventListener("click", onClick);
    return { node, value };
  }

  function buildStep(id) {
    const row = byId.get(id);
    const d = row.row_data;
    const parts = {};
    parts.toggle = canWrite
      ? el("button", { type: "button", class: "toggle", "data-testid": "toggle" })
      : el("span", { class: "toggle ro", "data-testid": "toggle" });
    const info = el("div", { class: "info" },
      el("div", { class: "line1" },
        el("span", { class: "seiban", "data-testid": "fseiban" }, d.FSEIBAN || ""),
        row.machine_name ? el("span", { class: "machine" }, row.machine_name) : null,
        el("span", { class: "res", "data-testid": "fsigencd" }, `${d.FSIGENCD || ""} ${d.FSIGENMEI || ""}`.trim()),
        el("span", { class: "kojun" }, `${t.process_order} ${d.FKOJUN || ""}`)),
      el("div", { class: "line2" },
        el("span", { class: "hincd", "data-testid": "fhincd" }, d.FHINCD || ""),
        el("span", { class: "hinmei", "data-testid": "fhinmei" }, d.FHINMEI || ""),
        d.FSIGENSHOYORYO ? el("span", { class: "hours" }, `${t.hours} ${d.FSIGENSHOYORYO}`) : null));
    parts.order = chip("order", t.order, () => openOrder(id));
    parts.due = chip("due", t.due_date, () => openDue(id));
    parts.processing = chip("processing", t.processing_type, () => openProcessing(id));
    parts.note = chip("note", t.note, () => openNote(id));
    parts.note.node.classList.add("chip-note");
    const edits = el("div", { class: "edits" }, parts.order.node, parts.due.node, parts.processing.node, parts.note.node);
    if (canWrite) {
      parts.toggle.addEventListener("click", () => {
        send(id, "completion", view(id).completed ? "incomplete" : "complete");
      });
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

  function update(id) {
    const parts = stepEls.get(id);
    if (!parts || !byId.has(id)) return;
    const v = view(id);
    parts.root.classList.toggle("done", v.completed);
    parts.root.setAttribute("data-completed", v.completed ? "true" : "false");
    parts.toggle.setAttribute("aria-pressed", v.completed ? "true" : "false");
    parts.toggle.textContent = v.completed ? t.complete : (canWrite ? t.mark_complete : "—");
    if (canWrite) parts.toggle.title = v.completed ? t.mark_incomplete : t.mark_complete;
    parts.order.value.textContent = v.order === null ? "—" : String(v.order);
    if (canWrite) parts.order.node.disabled = v.completed;
    parts.due.value.textContent = v.due_date || "—";
    parts.processing.value.textContent = v.processing || "—";
    parts.note.value.textContent = v.note || "—";
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
      const btn = el("button", { type: "button", class: "btn small", "data-testid": "dismiss" }, "×");
      btn.addEventListener("click", () => dismiss(id));
      children.push(el("span", { class: "failed", "data-testid": "refused-reason" }, `${t.write_refused}: ${message}`), btn);
    }
    parts.state.replaceChildren(...children);
  }

  // --- editors (one modal dialog, built for the step it edits) -------------------------------

  const editor = document.getElementById("editor");

  function openEditor(title, content, actions) {
    const close = el("button", { type: "button", class: "btn", "data-testid": "editor-close" }, t.close);
    close.addEventListener("click", () => editor.close());
    editor.replaceChildren(
      el("h2", null, title),
      content,
      el("div", { class: "editor-actions" }, ...actions, close));
    editor.showModal();
  }

  function stepTitle(id) {
    const d = byId.get(id).row_data;
    return `${d.FSEIBAN || ""} ${d.FHINCD || ""} ${d.FHINMEI || ""} (${t.process_order} ${d.FKOJUN || ""})`;
  }

  function actionButton(label, testid, onClick, cls) {
    const b = el("button", { type: "button", class: "btn " + (cls || ""), "data-testid": testid }, label);
    b.addEventListener("click", onClick);
    return b;
  }

  function openNote(id) {
    const input = el("input", {
      type: "text", class: "note-input", maxlength: "100", "aria-label": t.note,
      "data-testid": "note-input", enterkeyhint: "done", value: view(id).note,
    });
    const save = () => { send(id, "note", input.value.replace(/[\r\n]+/g, " ").trim()); editor.close(); };
    // preventDefault: closing moves focus back to the note button, which the same Enter
    // would otherwise press, opening the editor again
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); save(); } });
    openEditor(`${t.note} — ${stepTitle(id)}`, el("div", { class: "editor-body" }, input), [
      actionButton(t.save, "note-save", save, "primary"),
      actionButton(t.clear, "note-clear", () => { send(id, "note", ""); editor.close(); }),
    ]);
    input.focus();
  }

  function openDue(id) {
    const input = el("input", { type: "date", class: "due-input", "aria-label": t.due_date, "data-testid": "due-input", value: view(id).due_date });
    const set = (value) => { send(id, "due_date", value); editor.close(); };
    openEditor(`${t.due_date} — ${stepTitle(id)}`, el("div", { class: "editor-body" },
      el("div", { class: "quick" },
        actionButton(t.today, "due-today", () => set(isoDay(0))),
        actionButton(t.tomorrow, "due-tomorrow", () => set(isoDay(1))),
        actionButton(t.day_after, "due-day-after", () => set(isoDay(2)))),
      input), [
      actionButton(t.save, "due-save", () => set(input.value), "primary"),
      actionButton(t.clear, "due-clear", () => set("")),
    ]);
  }

  function openChoice(id, field, title, options, current) {
    const grid = el("div", { class: "choices" });
    for (const o of options) {
      const b = actionButton(String(o), "choice", () => { send(id, field, o); editor.close(); }, "choice");
      b.setAttribute("aria-pressed", o === current ? "true" : "false");
      grid.append(b);
    }
    openEditor(`${title} — ${stepTitle(id)}`, grid, [
      actionButton(t.remove, "choice-clear", () => { send(id, field, null); editor.close(); }),
    ]);
  }

  function openOrder(id) {
    openChoice(id, "order", t.order, Array.from({ length: 10 }, (_, i) => i + 1), view(id).order);
  }

  function openProcessing(id) {
    openChoice(id, "processing", t.processing_type, processingTypes, view(id).processing || null);
  }

  // --- the list: pages of steps, only those near the viewport rendered ----------------------

  const keeper = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const page = pages[Number(entry.target.getAttribute("data-page"))];
      if (!page) continue;
      if (entry.isIntersecting) renderPage(page);
      else releasePage(page);
    }
    board.setAttribute("data-rendered-pages", String(pages.filter((p) => p.rendered).length));
  }, { rootMargin: KEEP_MARGIN });

  function renderPage(page) {
    if (page.rendered) return;
    page.rendered = true;
    page.block.style.height = "";
    page.block.replaceChildren(...page.ids.filter((id) => byId.has(id)).map(buildStep));
  }

  function releasePage(page) {
    if (!page.rendered) return;
    page.height = page.block.getBoundingClientRect().height;
    page.block.style.height = page.height + "px";
    for (const id of page.ids) stepEls.delete(id);
    page.block.replaceChildren();
    page.rendered = false;
  }

  function addPage(items) {
    const ids = [];
    for (const row of items) {
      byId.set(row.id, row);
      ids.push(row.id);
    }
    const index = pages.length;
    const block = el("div", { class: "page", "data-testid": "page", "data-page": String(index) });
    const page = { ids, block, rendered: false, height: 0 };
    pages.push(page);
    board.append(block);
    renderPage(page);
    keeper.observe(block);
    board.setAttribute("data-pages", String(pages.length));
  }

  function clearList() {
    for (const p of pages) keeper.unobserve(p.block);
    pages.length = 0;
    stepEls.clear();
    // rows with unconfirmed writes stay known, so their pending state is never lost
    for (const id of Array.from(byId.keys())) {
      if (!Array.from(writes.values()).some((w) => w.id === id)) byId.delete(id);
    }
    board.replaceChildren();
    board.setAttribute("data-pages", "0");
  }

  function listParams() {
    const p = scopeParams();
    p.set("limit", String(PAGE_SIZE));
    p.set("completion", filters.completion);
    if (filters.has_note) p.set("has_note", "true");
    if (filters.has_due_date) p.set("has_due_date", "true");
    if (query) p.set("q", query);
    return p;
  }

  async function reload() {
    const mine = ++generation;
    nextCursor = null;
    loadingMore = false;
    document.getElementById("kiosk-news").hidden = true;
    const ask = !hasScope() && !query;
    document.getElementById("kiosk-ask").hidden = !ask;
    clearList();
    if (ask) {
      board.setAttribute("data-state", "ask-scope");
      board.setAttribute("data-more", "false");
      document.getElementById("kiosk-loading").hidden = true;
      renderSummary(null);
      return;
    }
    board.setAttribute("data-state", "loading");
    loadSummary();
    try {
      const page = await getJson(`${base}/rows?` + listParams().toString());
      if (mine !== generation) return;
      showError("");
      addPage(page.items);
      if (!page.items.length) board.append(el("p", { class: "muted empty", "data-testid": "no-steps" }, t.no_steps));
      nextCursor = page.next_cursor;
      board.setAttribute("data-more", nextCursor ? "true" : "false");
      board.setAttribute("data-state", "ready");
    } catch (e) {
      if (mine !== generation) return;
      showError(`${t.load_failed}: ${e.message}`);
      board.setAttribute("data-state", "error");
    } finally {
      if (mine === generation) document.getElementById("kiosk-loading").hidden = true;
    }
  }

  async function loadMore() {
    if (loadingMore || !nextCursor || board.getAttribute("data-state") !== "ready") return;
    loadingMore = true;
    const mine = generation;
    try {
      const p = listParams();
      p.set("cursor", nextCursor);
      const page = await getJson(`${base}/rows?` + p.toString());
      if (mine !== generation) return;
      addPage(page.items);
      nextCursor = page.next_cursor;
      board.setAttribute("data-more", nextCursor ? "true" : "false");
    } catch (e) {
      if (mine === generation) showError(`${t.load_failed}: ${e.message}`);
    } finally {
      if (mine === generation) loadingMore = false;
    }
    if (mine === generation && moreVisible) loadMore();
  }

  let moreVisible = false;
  new IntersectionObserver((entries) => {
    moreVisible = entries.some((e) => e.isIntersecting);
    if (moreVisible) loadMore();
  }, { rootMargin: "800px 0px" }).observe(document.getElementById("board-more"));

  // --- progress of the scope -----------------------------------------------------------------

  function renderSummary(summary) {
    const text = document.getElementById("overall-text");
    const fill = document.getElementById("overall-fill");
    if (!summary) {
      text.textContent = "";
      fill.style.width = "0%";
      return;
    }
    text.textContent = `${summary.completed}/${summary.total}`;
    fill.style.width = (summary.total ? Math.round((summary.completed / summary.total) * 100) : 0) + "%";
  }

  async function loadSummary() {
    if (!hasScope()) { renderSummary(null); return; }
    const mine = generation;
    try {
      const summary = await getJson(`${base}/summary?` + scopeParams().toString());
      if (mine === generation) renderSummary(summary);
    } catch (e) { /* the board still works without the bar */ }
  }

  let summaryTimer = null;
  function scheduleSummary() {
    clearTimeout(summaryTimer);
    summaryTimer = setTimeout(loadSummary, 500);
  }

  // --- the scope: resources and registered 製番 ---------------------------------------------

  function setScope(next) {
    scope = { resources: next.resources.slice(), seibans: next.seibans.slice() };
    saveJson(SCOPE_KEY, scope);
    renderScope();
    reload();
  }

  function toggleIn(list, value) {
    return list.includes(value) ? list.filter((v) => v !== value) : list.concat([value]);
  }

  function renderScope() {
    const resBox = document.getElementById("scope-resources");
    const codes = knownResources.map((r) => r.resource_cd);
    const unknown = scope.resources.filter((c) => !codes.includes(c));
    const buttons = knownResources.map((r) => scopeButton(r.resource_cd, r.resource_name, "scope-resource"));
    for (const code of unknown) {
      const b = scopeButton(code, "?", "scope-resource");
      b.classList.add("unknown");
      buttons.push(b);
    }
    resBox.replaceChildren(...buttons);
    const seiBox = document.getElementById("scope-seibans");
    const items = registered.items.map((s) => {
      const b = el("button", {
        type: "button", class: "btn scope-btn seiban-btn", "data-testid": "seiban", "data-fseiban": s.fseiban,
        "aria-pressed": scope.seibans.includes(s.fseiban) ? "true" : "false",
      },
        el("span", { class: "sb-code" }, s.fseiban),
        el("span", { class: "sb-name" }, s.machine_name || ""),
        el("span", { class: "sb-progress" }, `${s.completed}/${s.total}`));
      b.addEventListener("click", () => setScope({ resources: scope.resources, seibans: toggleIn(scope.seibans, s.fseiban) }));
      return b;
    });
    // a scope 製番 that is no longer registered stays visible, so it can be let go of
    for (const code of scope.seibans) {
      if (!registered.items.some((s) => s.fseiban === code)) {
        const b = el("button", { type: "button", class: "btn scope-btn seiban-btn", "data-testid": "seiban", "data-fseiban": code, "aria-pressed": "true" }, code);
        b.addEventListener("click", () => setScope({ resources: scope.resources, seibans: toggleIn(scope.seibans, code) }));
        items.push(b);
      }
    }
    if (!items.length) items.push(el("span", { class: "muted" }, t.no_registered));
    seiBox.replaceChildren(...items);
  }

  function scopeButton(code, name, testid) {
    const b = el("button", {
      type: "button", class: "btn scope-btn", "data-testid": testid, "data-resource": code,
      "aria-pressed": scope.resources.includes(code) ? "true" : "false",
    }, el("span", { class: "sb-code" }, code), name ? el("span", { class: "sb-name" }, name) : null);
    b.addEventListener("click", () => setScope({ resources: toggleIn(scope.resources, code), seibans: scope.seibans }));
    return b;
  }

  async function loadRegistered() {
    // always the whole answer: its ETag is the list's version, while the buttons' progress
    // changes with every completion (at most 100 short items)
    const res = await request(`${base}/seibans`);
    if (!res.ok) throw new Error(`${res.status} ${await problemText(res)}`);
    registered = await res.json();
    registeredTag = res.headers.get("ETag");
    renderScope();
    return true;
  }

  function seibanError(message) {
    const box = document.getElementById("seiban-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  async function saveRegistered(list) {
    seibanError("");
    const res = await request(`${base}/seibans`, {
      method: "PUT",
      headers: {
        "Content-Type": "application/json",
        "If-Match": registeredTag || '"seibans-0"',
        "X-CSRF-Token": cookie("csvboard_csrf"),
      },
      body: JSON.stringify({ seibans: list }),
    }).catch(() => null);
    if (res && res.ok) {
      registered = await res.json();
      registeredTag = res.headers.get("ETag");
      renderScope();
      return true;
    }
    if (res && res.status === 412) {
      await loadRegistered().catch(() => {});
      seibanError(t.seiban_list_changed);
    } else {
      seibanError(res ? await problemText(res) : t.write_failed);
    }
    return false;
  }

  function openSeibanEditor() {
    let list = registered.items.map((s) => s.fseiban);
    const rows = el("ul", { class: "seiban-list", "data-testid": "seiban-list" });
    const message = el("p", { class: "alert", "data-testid": "seiban-editor-error", hidden: true });
    const draw = () => {
      rows.replaceChildren(...list.map((code) => {
        const remove = actionButton(t.remove, "seiban-remove", () => { list = list.filter((c) => c !== code); draw(); });
        return el("li", { "data-fseiban": code }, el("span", { class: "sb-code" }, code), remove);
      }));
    };
    draw();
    const input = el("input", { type: "text", maxlength: "8", "data-testid": "seiban-input", placeholder: t.seiban_add_placeholder, autocomplete: "off" });
    const add = () => {
      const v = input.value.normalize("NFKC").trim();
      if (!v) return;
      if (list.length >= registered.limit) {
        message.textContent = t.seiban_limit.replace("{n}", String(registered.limit));
        message.hidden = false;
        return;
      }
      if (!list.includes(v)) list = list.concat([v]);
      input.value = "";
      draw();
    };
    input.addEventListener("keydown", (ev) => { if (ev.key === "Enter") { ev.preventDefault(); add(); } });
    openEditor(t.registered_seibans, el("div", { class: "editor-body" },
      rows, el("div", { class: "quick" }, input, actionButton(t.add, "seiban-add", add)), message), [
      actionButton(t.save, "seiban-save", async () => {
        add();
        if (await saveRegistered(list)) editor.close();
        else {
          message.textContent = document.getElementById("seiban-error").textContent;
          message.hidden = false;
          list = registered.items.map((s) => s.fseiban);
          draw();
        }
      }, "primary"),
    ]);
    input.focus();
  }

  // --- the poll: other terminals' changes, without reloading the list ------------------------

  async function poll() {
    const ids = [];
    for (const p of pages) if (p.rendered) ids.push(...p.ids);
    const asked = new Map(ids.map((id) => [id, epochs.get(id) || 0]));
    const mine = generation;
    const jobs = [loadRegistered().catch(() => false), loadLatest()];
    if (ids.length) {
      const p = new URLSearchParams();
      for (const id of ids.slice(0, 200)) p.append("id", id);
      const headers = lookupTag ? { "If-None-Match": lookupTag } : {};
      jobs.push(request(`${base}/lookup?` + p.toString(), { headers }).then(async (res) => {
        if (res.status === 304 || !res.ok || mine !== generation) return;
        lookupTag = res.headers.get("ETag");
        const doc = await res.json();
        const seen = new Set();
        for (const row of doc.items) {
          seen.add(row.id);
          // a write sent or confirmed since this poll was asked knows better
          if ((epochs.get(row.id) || 0) !== asked.get(row.id)) continue;
          if (!row.is_active) { removeStep(row.id); continue; }
          const before = byId.get(row.id);
          byId.set(row.id, row);
          if (!before || JSON.stringify(before) !== JSON.stringify(row)) update(row.id);
        }
        for (const id of asked.keys()) if (!seen.has(id)) removeStep(id); // purged
      }).catch(() => {}));
    }
    if (hasScope()) jobs.push(loadSummary());
    await Promise.all(jobs);
  }

  function removeStep(id) {
    if (Array.from(writes.values()).some((w) => w.id === id)) return; // keep what is unsaved
    const parts = stepEls.get(id);
    if (parts) parts.root.remove();
    stepEls.delete(id);
    for (const p of pages) p.ids = p.ids.filter((x) => x !== id);
  }

  async function loadLatest() {
    try {
      const latest = await getJson("/api/v1/ops/ingestion/latest");
      const mine = latest.dashboards.find((d) => d.dashboard === slug);
      const at = mine ? mine.last_success_at : null;
      document.getElementById("last-success").textContent = fmtTime(at);
      // a new ingestion may bring steps into the scope: offer a refresh, never move the list
      if (lastSuccess !== undefined && at !== lastSuccess && board.getAttribute("data-state") === "ready") {
        document.getElementById("kiosk-news").hidden = false;
      }
      lastSuccess = at;
    } catch (e) { /* keep what is shown */ }
  }

  // --- controls ------------------------------------------------------------------------------

  const search = document.getElementById("kiosk-search");
  let searchTimer = null;
  function searchChanged() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      const next = search.value.trim().replace(/[\s、，]+/g, ",").replace(/^,+|,+$/g, "");
      if (next === query) return;
      query = next;
      reload();
    }, SEARCH_DEBOUNCE_MS);
  }
  search.addEventListener("input", searchChanged);

  const keypad = document.getElementById("keypad");
  const keypadToggle = document.getElementById("keypad-toggle");
  keypadToggle.addEventListener("click", () => {
    const open = keypad.hidden;
    keypad.hidden = !open;
    keypadToggle.setAttribute("aria-pressed", open ? "true" : "false");
    if (open && !keypad.childElementCount) {
      const keys = "1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ*-".split("").concat([",", "⌫", t.clear]);
      keypad.append(...keys.map((k) => {
        const b = el("button", { type: "button", class: "btn key", "data-key": k }, k);
        b.addEventListener("click", () => {
          if (k === "⌫") search.value = search.value.slice(0, -1);
          else if (k === t.clear) search.value = "";
          else search.value += k;
          searchChanged();
        });
        return b;
      }));
    }
  });

  function renderFilters() {
    for (const b of document.querySelectorAll("#kiosk-filter [data-completion]")) {
      b.setAttribute("aria-pressed", b.getAttribute("data-completion") === filters.completion ? "true" : "false");
    }
    for (const b of document.querySelectorAll("[data-filter]")) {
      b.setAttribute("aria-pressed", filters[b.getAttribute("data-filter")] ? "true" : "false");
    }
  }
  for (const btn of document.querySelectorAll("#kiosk-filter [data-completion]")) {
    btn.addEventListener("click", () => {
      filters.completion = btn.getAttribute("data-completion");
      saveJson(FILTER_KEY, filters);
      renderFilters();
      reload();
    });
  }
  for (const btn of document.querySelectorAll("[data-filter]")) {
    btn.addEventListener("click", () => {
      const name = btn.getAttribute("data-filter");
      filters[name] = !filters[name];
      saveJson(FILTER_KEY, filters);
      renderFilters();
      reload();
    });
  }
  document.getElementById("kiosk-refresh").addEventListener("click", () => reload());
  document.getElementById("kiosk-news-load").addEventListener("click", () => reload());
  const seibanEdit = document.getElementById("seiban-edit");
  if (seibanEdit) seibanEdit.addEventListener("click", openSeibanEditor);

  getJson("/api/v1/dashboards/" + encodeURIComponent(slug))
    .then((d) => {
      document.getElementById("kiosk-name").textContent = d.name;
      processingTypes = d.processing_types || [];
    })
    .catch(() => {});
  getJson(`${base}/resources`)
    .then((doc) => { knownResources = doc.items; renderScope(); })
    .catch((e) => showError(`${t.load_failed}: ${e.message}`));
  loadRegistered().catch(() => {});
  restore();
  renderFilters();
  renderScope();
  reload();
  loadLatest();
  setInterval(() => { if (!document.hidden) poll(); }, POLL_MS);
  // For tests and the benchmark: run a poll now instead of waiting for the timer.
  window.csvboardKiosk = { poll };
})();
