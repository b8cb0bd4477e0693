// csvboard 進捗一覧: a card per 製番 — its machine, the nearest due date of an open step, a
// progress bar, and each part with its process steps as chips (resource; done / open) in 工順
// order. The registered 製番 come first (the same list the kiosk board registers); "all 製番"
// walks the schedule; a search finds 製番 by 製番, 品番 or 品名.
//
// Size: cards come a page at a time (keyset cursor, GET /cards) as the worker scrolls, and a
// page scrolled far away is replaced by an empty block of its height, so the element count
// stays bounded however many 製番 the schedule has (a real one: 60,000 steps, ~3,000 製番).
//
// A chip opens that step with the list's own controls (steps.js: completion, order, due date,
// processing type, note; the same optimistic writes); a confirmed completion re-colours the
// chip and the card's count at once.
//
// Text from the server is only ever set with textContent (never innerHTML).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const slug = config.slug;
  const root = document.getElementById("cards");
  const canWrite = root.getAttribute("data-can-write") === "true";
  const base = "/api/v1/schedules/" + encodeURIComponent(slug);
  const el = window.csvboardSteps.el;
  const getJson = window.csvboardSteps.getJson;
  const PAGE_CARDS = 12;
  const SEARCH_DEBOUNCE_MS = 120;
  const KEEP_MARGIN = "2000px 0px";

  const stepDialog = document.getElementById("step-dialog");
  const steps = window.csvboardSteps({
    slug, t, canWrite, timezone: config.timezone,
    editor: document.getElementById("editor"),
    onWrite: (id, field, state) => { if (field === "completion") recolour(id, state); },
  });

  const chipsById = new Map();  // row id -> {chip, card} of the chips on screen
  const cardState = new Map();  // 製番 -> {total, completed, done: Map(row id -> bool), els}
  const pages = [];             // {block, cards (DOM), rendered, height}
  let source = "registered";
  let query = "";
  let nextCursor = null;
  let generation = 0;
  let loading = false;
  let registered = null;        // the registered 製番, once read

  function showError(message) {
    const box = document.getElementById("cards-error");
    box.textContent = message;
    box.hidden = !message;
  }


  // --- one card ------------------------------------------------------------------------------

  function percent(done, total) {
    return total ? Math.round((100 * done) / total) : 0;
  }

  function renderCount(state) {
    const p = percent(state.completed, state.total);
    state.els.count.textContent = `${state.completed} / ${state.total} (${p}%)`;
    state.els.fill.style.width = p + "%";
    state.els.root.setAttribute("data-completed", String(state.completed));
  }

  function buildChip(card, step) {
    const label = step.fsigencd || "—";
    const attrs = {
      type: "button", class: "step-chip", "data-testid": "step-chip", "data-row-id": step.id,
      "data-fsigencd": step.fsigencd, "data-fkojun": String(step.fkojun),
      "data-completed": step.completed ? "true" : "false",
      title: `${t.process_order} ${step.fkojun} ${step.fsigenmei || ""}`.trim(),
    };
    const chip = el("button", attrs, label);
    chip.addEventListener("click", () => openStep(step.id));
    chipsById.set(step.id, { chip, card: card.fseiban });
    return chip;
  }

  function buildCard(card) {
    const fill = el("div", { class: "fill instant" });
    const count = el("span", { class: "card-count", "data-testid": "card-count" });
    const rootEl = el("article", { class: "card", "data-testid": "card", "data-fseiban": card.fseiban },
      el("div", { class: "card-head" },
        el("span", { class: "seiban", "data-testid": "card-seiban" }, card.fseiban),
        card.machine_name ? el("span", { class: "machine", "data-testid": "card-machine" }, card.machine_name) : null,
        card.due_date ? el("span", { class: "due", "data-testid": "card-due" }, `${t.card_due} ${card.due_date}`) : null),
      el("div", { class: "bar" }, fill),
      count);
    const state = { total: card.total, completed: card.completed, done: new Map(), els: { root: rootEl, fill, count } };
    cardState.set(card.fseiban, state);
    for (const part of card.parts) {
      const chips = part.steps.map((step) => {
        state.done.set(step.id, step.completed);
        return buildChip(card, step);
      });
      rootEl.append(el("div", { class: "part" + (part.completed ? " done" : ""), "data-testid": "card-part", "data-fhincd": part.fhincd },
        el("span", { class: "part-name" }, `${part.fhinmei} ${part.fhincd}`), ...chips));
    }
    if (card.more_parts) {
      rootEl.append(el("p", { class: "more", "data-testid": "card-more" }, t.more_parts.replace("{n}", String(card.more_parts))));
    }
    renderCount(state);
    return rootEl;
  }

  // A confirmed (or optimistic) completion: the chip and the card's count follow the step.
  function recolour(id, state) {
    const on = chipsById.get(id);
    if (!on || !steps.byId.has(id)) return;
    const done = steps.view(id).completed;
    on.chip.setAttribute("data-completed", done ? "true" : "false");
    on.chip.setAttribute("data-write", state === "ok" ? "ok" : state);
    const card = cardState.get(on.card);
    if (card && card.done.get(id) !== done) {
      card.done.set(id, done);
      card.completed += done ? 1 : -1;
      renderCount(card);
    }
  }

  // --- a chip opens its step with the list's controls -----------------------------------------

  async function openStep(id) {
    try {
      const doc = await getJson(`${base}/lookup?id=${encodeURIComponent(id)}`);
      if (!doc.items.length) throw new Error(t.not_found);
      steps.byId.set(id, doc.items[0]);
    } catch (e) {
      showError(`${t.load_failed}: ${e.message}`);
      return;
    }
    const close = el("button", { type: "button", class: "btn", "data-testid": "step-close" }, t.close);
    close.addEventListener("click", () => stepDialog.close());
    stepDialog.replaceChildren(el("div", { class: "steps" }, steps.buildStep(id)), el("div", { class: "editor-actions" }, close));
    stepDialog.showModal();
    recolour(id, "ok");
  }

  // --- pages of cards, only those near the viewport rendered ---------------------------------

  const keeper = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const page = pages[Number(entry.target.getAttribute("data-page"))];
      if (!page) continue;
      if (entry.isIntersecting && !page.rendered) {
        page.rendered = true;
        page.block.classList.remove("released");
        page.block.style.height = "";
        page.block.replaceChildren(...page.cards);
      } else if (!entry.isIntersecting && page.rendered) {
        page.height = page.block.getBoundingClientRect().height;
        page.rendered = false;
        page.block.classList.add("released");
        page.block.style.height = page.height + "px";
        page.block.replaceChildren();
      }
    }
  }, { rootMargin: KEEP_MARGIN });

  function addPage(items) {
    const cards = items.map(buildCard);
    const block = el("div", { class: "cards-page", "data-page": String(pages.length) }, ...cards);
    pages.push({ block, cards, rendered: true, height: 0 });
    root.append(block);
    keeper.observe(block);
    root.setAttribute("data-pages", String(pages.length));
  }

  function params() {
    const p = new URLSearchParams({ limit: String(PAGE_CARDS) });
    if (query) p.set("q", query);
    else if (source === "registered") for (const s of registered) p.append("seiban", s);
    if (nextCursor) p.set("cursor", nextCursor);
    return p;
  }

  async function loadMore() {
    if (loading || (pages.length && !nextCursor)) return;
    loading = true;
    const mine = generation;
    try {
      if (registered === null) {
        const doc = await getJson(`${base}/seibans`);
        registered = doc.items.map((i) => i.fseiban);
        if (!registered.length && source === "registered") setSource("all", false);
      }
      let page = { items: [], next_cursor: null };
      if (query || source === "all" || registered.length) page = await getJson(`${base}/cards?${params()}`);
      if (mine !== generation) return;
      nextCursor = page.next_cursor;
      addPage(page.items);
      document.getElementById("cards-empty").hidden = pages.some((p) => p.cards.length) || !!nextCursor;
      root.setAttribute("data-more", nextCursor ? "true" : "false");
      root.setAttribute("data-state", "ready");
      showError("");
    } catch (e) {
      if (mine === generation) showError(`${t.load_failed}: ${e.message}`);
    } finally {
      if (mine === generation) loading = false;
    }
  }

  function reload() {
    generation += 1;
    loading = false;
    nextCursor = null;
    for (const page of pages) keeper.unobserve(page.block);
    pages.length = 0;
    chipsById.clear();
    cardState.clear();
    root.replaceChildren();
    root.setAttribute("data-state", "loading");
    root.setAttribute("data-pages", "0");
    loadMore();
  }

  // more cards when the end of the list comes near
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "800px 0px" }).observe(document.getElementById("cards-more"));

  // --- source and search ---------------------------------------------------------------------

  function setSource(next, load = true) {
    source = next;
    for (const b of document.querySelectorAll("#cards-source [data-source]")) {
      b.setAttribute("aria-pressed", b.getAttribute("data-source") === source ? "true" : "false");
    }
    if (load) reload();
  }

  for (const b of document.querySelectorAll("#cards-source [data-source]")) {
    b.addEventListener("click", () => setSource(b.getAttribute("data-source")));
  }
  let debounce = null;
  document.getElementById("cards-search").addEventListener("input", (ev) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { query = ev.target.value.trim(); reload(); }, SEARCH_DEBOUNCE_MS);
  });
  document.getElementById("cards-refresh").addEventListener("click", () => { registered = null; reload(); });
  stepDialog.addEventListener("close", () => stepDialog.replaceChildren());

  getJson("/api/v1/dashboards/" + encodeURIComponent(slug))
    .then((d) => steps.setProcessingTypes(d.processing_types || []))
    .catch(() => {});
  reload();
})();
