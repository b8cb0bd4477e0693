// csvboard 順位ボード: a column per chosen resource, its steps in working order — machining
// order 1–10 first, then by due date, then the kiosk order (the server decides: GET
// /order-board) — open steps by default. Each step has the list's own controls (steps.js:
// completion, order, due date, processing type, note, the same optimistic writes).
//
// A confirmed completion or order change re-reads its column's first page, so the order shown
// is the server's (a completed step leaves and the numbers after it close up). A column shows
// a page of steps and a "show more" button for the next; resources are chosen on the page
// (kept in localStorage; the first time, the list's scope).
//
// Text from the server is only ever set with textContent (never innerHTML).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const slug = config.slug;
  const root = document.getElementById("columns");
  const canWrite = root.getAttribute("data-can-write") === "true";
  const base = "/api/v1/schedules/" + encodeURIComponent(slug);
  const el = window.csvboardSteps.el;
  const getJson = window.csvboardSteps.getJson;
  const PAGE = 30;
  const CHOICE_KEY = "csvboard.board.resources." + slug;
  const SCOPE_KEY = "csvboard.kiosk.scope." + slug;  // the list's scope, the first default

  const steps = window.csvboardSteps({
    slug, t, canWrite, timezone: config.timezone,
    editor: document.getElementById("editor"),
    onWrite: (id, field, state) => {
      if (state === "ok" && ["completion", "order", "due_date"].includes(field)) reloadColumnOf(id);
    },
  });

  const columns = new Map();  // resource code -> {code, root, list, more, cursor, ids, generation}
  let known = [];             // [{resource_cd, resource_name}]
  let chosen = load();
  let completion = "incomplete";

  function load() {
    try {
      const mine = JSON.parse(localStorage.getItem(CHOICE_KEY) || "null");
      if (Array.isArray(mine)) return mine;
      const scope = JSON.parse(localStorage.getItem(SCOPE_KEY) || "null");
      if (scope && Array.isArray(scope.resources)) return scope.resources;
    } catch (e) { /* unreadable: start empty */ }
    return [];
  }

  function save() {
    try { localStorage.setItem(CHOICE_KEY, JSON.stringify(chosen)); } catch (e) { /* full */ }
  }

  function showError(message) {
    const box = document.getElementById("board-error");
    box.textContent = message;
    box.hidden = !message;
  }


  // --- columns -------------------------------------------------------------------------------

  function buildColumn(code) {
    const name = (known.find((r) => r.resource_cd === code) || {}).resource_name || "";
    const list = el("div", { class: "steps", "data-testid": "column-steps" });
    const more = el("button", { type: "button", class: "btn", "data-testid": "column-more", hidden: true }, t.more);
    const empty = el("p", { class: "muted", "data-testid": "column-empty", hidden: true }, t.column_empty);
    const col = el("section", { class: "column", "data-testid": "column", "data-resource": code, "data-state": "loading" },
      el("div", { class: "column-head" }, el("span", null, code), el("span", { class: "muted" }, name)),
      list, empty, more);
    const column = { code, root: col, list, more, empty, cursor: null, ids: [], generation: 0 };
    more.addEventListener("click", () => loadPage(column));
    columns.set(code, column);
    return column;
  }

  async function loadPage(column, fresh) {
    const mine = fresh ? ++column.generation : column.generation;
    const params = new URLSearchParams({ resource: column.code, completion, limit: String(PAGE) });
    if (!fresh && column.cursor) params.set("cursor", column.cursor);
    column.root.setAttribute("data-state", "loading");
    try {
      const page = await getJson(`${base}/order-board?${params}`);
      if (mine !== column.generation) return;
      if (fresh) {
        for (const id of column.ids) if (!steps.hasWrites(id)) steps.stepEls.delete(id);
        column.ids = [];
        column.list.replaceChildren();
      }
      for (const row of page.items) {
        steps.byId.set(row.id, row);
        column.ids.push(row.id);
        column.list.append(steps.buildStep(row.id));
      }
      column.cursor = page.next_cursor;
      column.more.hidden = !page.next_cursor;
      column.empty.hidden = column.ids.length > 0;
      column.root.setAttribute("data-state", "ready");
      showError("");
    } catch (e) {
      if (mine === column.generation) {
        column.root.setAttribute("data-state", "error");
        showError(`${t.load_failed}: ${e.message}`);
      }
    }
  }

  function reloadColumnOf(id) {
    const row = steps.byId.get(id);
    const code = row && row.row_data ? row.row_data.FSIGENCD : null;
    const column = code && columns.get(code);
    if (column) loadPage(column, true);
  }

  function render() {
    document.getElementById("board-ask").hidden = chosen.length > 0;
    columns.clear();
    root.replaceChildren(...chosen.map((code) => buildColumn(code).root));
    root.setAttribute("data-state", "ready");
    for (const column of columns.values()) loadPage(column, true);
  }

  // --- resources and filter ------------------------------------------------------------------

  function renderChoices() {
    const box = document.getElementById("board-resources");
    box.replaceChildren(...known.map((r) => {
      const on = chosen.includes(r.resource_cd);
      const b = el("button", {
        type: "button", class: "btn scope-btn", "data-testid": "board-resource",
        "data-resource": r.resource_cd, "aria-pressed": on ? "true" : "false",
      }, `${r.resource_cd} ${r.resource_name || ""}`.trim());
      b.addEventListener("click", () => {
        chosen = on ? chosen.filter((c) => c !== r.resource_cd) : [...chosen, r.resource_cd];
        save();
        renderChoices();
        render();
      });
      return b;
    }));
  }

  for (const b of document.querySelectorAll("#board-filter [data-completion]")) {
    b.addEventListener("click", () => {
      completion = b.getAttribute("data-completion");
      for (const o of document.querySelectorAll("#board-filter [data-completion]")) {
        o.setAttribute("aria-pressed", o === b ? "true" : "false");
      }
      render();
    });
  }
  document.getElementById("board-refresh").addEventListener("click", render);

  getJson("/api/v1/dashboards/" + encodeURIComponent(slug))
    .then((d) => steps.setProcessingTypes(d.processing_types || []))
    .catch(() => {});
  steps.restore();
  getJson(`${base}/resources`)
    .then((doc) => {
      known = doc.items;
      chosen = chosen.filter((c) => known.some((r) => r.resource_cd === c));
      renderChoices();
      render();
    })
    .catch((e) => showError(`${t.load_failed}: ${e.message}`));
})();
