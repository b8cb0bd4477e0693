// csvboard kiosk board: a terminal's scope of the production schedule (resources and/or
// registered 製番, kept in localStorage), paged from the server in kiosk order, with
// completion, note, due date, processing type and machining-order writes that survive a
// flaky network. One step, its writes and its editors are steps.js's (window.csvboardSteps,
// loaded first); this file is the page around them: scope, filters, search, paging, the
// summary, the registered 製番 and the poll.
//
// Size: the board never lists a whole dashboard (a real schedule is 60,000 steps). It asks for
// a scope or a search, fetches 50 steps a page (keyset cursor) as the worker scrolls, and keeps
// only the pages near the viewport in the DOM: a page scrolled far away is replaced by an empty
// block of its measured height, so the element count stays bounded whatever the scope's size.
//
// Writes are optimistic, kept in localStorage until confirmed, and re-render only their own
// step (steps.js says how).
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
  const SCOPE_KEY = "csvboard.kiosk.scope." + slug;
  const FILTER_KEY = "csvboard.kiosk.filters." + slug;
  const PAGE_SIZE = 50;
  const POLL_MS = 10000;
  const SEARCH_DEBOUNCE_MS = 120; // one request per pause in typing, not one per key
  const KEEP_MARGIN = "1500px 0px"; // pages within this distance of the viewport stay rendered
  const editor = document.getElementById("editor");
  const { el, cookie, problemText, actionButton } = window.csvboardSteps;
  const steps = window.csvboardSteps({
    slug, t, canWrite, editor, timezone: config.timezone,
    onWrite: (id, field, state) => { if (field === "completion" && state === "ok") scheduleSummary(); },
  });
  const byId = steps.byId;        // row id -> server row
  const stepEls = steps.stepEls;  // row id -> step element parts (rendered steps only)
  const pages = [];           // {ids, block, rendered, height}
  let scope = loadJson(SCOPE_KEY, { resources: [], seibans: [] });
  let filters = loadJson(FILTER_KEY, { completion: "all", has_note: false, has_due_date: false });
  let query = "";
  let nextCursor = null;
  let generation = 0;         // bumped by every reload of the list: late pages of an old one are dropped
  let loadingMore = false;
  let knownResources = [];
  let registered = { version: 0, limit: 100, items: [] };
  let registeredTag = null;
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

  function scopeParams() {
    const p = new URLSearchParams();
    for (const r of scope.resources) p.append("resource", r);
    for (const s of scope.seibans) p.append("seiban", s);
    return p;
  }

  function hasScope() {
    return scope.resources.length > 0 || scope.seibans.length > 0;
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
    page.block.replaceChildren(...page.ids.filter((id) => byId.has(id)).map(steps.buildStep));
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
      if (!steps.hasWrites(id)) byId.delete(id);
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
    steps.openEditor(t.registered_seibans, el("div", { class: "editor-body" },
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
    const asked = new Map(ids.map((id) => [id, steps.epoch(id)]));
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
          if (steps.epoch(row.id) !== asked.get(row.id)) continue;
          if (!row.is_active) { removeStep(row.id); continue; }
          const before = byId.get(row.id);
          byId.set(row.id, row);
          if (!before || JSON.stringify(before) !== JSON.stringify(row)) steps.update(row.id);
        }
        for (const id of asked.keys()) if (!seen.has(id)) removeStep(id); // purged
      }).catch(() => {}));
    }
    if (hasScope()) jobs.push(loadSummary());
    await Promise.all(jobs);
  }

  function removeStep(id) {
    if (steps.hasWrites(id)) return; // keep what is unsaved
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
      steps.setProcessingTypes(d.processing_types || []);
    })
    .catch(() => {});
  getJson(`${base}/resources`)
    .then((doc) => { knownResources = doc.items; renderScope(); })
    .catch((e) => showError(`${t.load_failed}: ${e.message}`));
  loadRegistered().catch(() => {});
  steps.restore();
  renderFilters();
  renderScope();
  reload();
  loadLatest();
  setInterval(() => { if (!document.hidden) poll(); }, POLL_MS);
  // For tests and the benchmark: run a poll now instead of waiting for the timer.
  window.csvboardKiosk = { poll };
})();
