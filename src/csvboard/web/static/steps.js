// csvboard steps: one step of a schedule and its writes, shared by the pages that show steps
// (the kiosk board, kiosk.js). Loaded before the page's own script, it defines one factory,
// window.csvboardSteps(options), which returns the page's steps object: the rows it knows
// (byId), each step's effective view, the step element (completion toggle, machining order,
// due date, processing type and note chips, write state), the writes and the editors, all
// in the page's one <dialog>. The page decides which steps exist and where they go; the
// stateless helpers (el, cookie, problemText, actionButton) hang on the factory.
//
// Writes are optimistic: the step shows the new value at once, marked "pending" until the
// server confirms it. A network error, a time-out or a 5xx keeps the value and marks the write
// "failed" with a retry button (every write is an idempotent PUT of the intended value, never a
// toggle, so retrying is always safe). Unconfirmed writes are also kept in localStorage, so a
// reload does not lose them either. A 4xx (the server refused the value) reverts to the
// server's state and says why. A write re-renders only its own step.
//
// Each write sent or confirmed bumps its step's epoch: a page that re-reads steps from the
// server (the kiosk's poll) compares epochs to drop an answer a newer write knows better than.
//
// Text from the server is only ever set with textContent (never innerHTML).
"use strict";

(function () {
  const WRITE_TIMEOUT_MS = 15000;
  const FIELDS = {
    completion: "completion",
    note: "note",
    due_date: "due-date",
    processing: "processing-type",
    order: "order",
  };

  // --- helpers -------------------------------------------------------------------------------

  const { el, cookie } = window.csvboardDom;

  async function problemText(res) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    return detail;
  }

  function actionButton(label, testid, onClick, cls) {
    const b = el("button", { type: "button", class: "btn " + (cls || ""), "data-testid": testid }, label);
    b.addEventListener("click", onClick);
    return b;
  }

  // options: {slug, t (the page's texts), canWrite, editor (the page's <dialog>), timezone
  // (config.timezone: the due date's today/tomorrow), onWrite(id, field, state) (optional;
  // called after the step is re-rendered, with "pending" when a write is sent and "ok",
  // "failed" or "refused" when it ends; not for a write a newer one of the field replaced)}
  function csvboardSteps(options) {
    const t = options.t;
    const slug = options.slug;
    const canWrite = !!options.canWrite;
    const editor = options.editor;
    const timezone = options.timezone;
    const onWrite = options.onWrite || (() => {});
    const base = "/api/v1/schedules/" + encodeURIComponent(slug);
    const STORE_KEY = "csvboard.kiosk.unsaved." + slug;

    const byId = new Map();     // row id -> server row
    const stepEls = new Map();  // row id -> step element parts (rendered steps only)
    const writes = new Map();   // "id:field" -> {id, field, value, state, message}
    const epochs = new Map();   // row id -> counter bumped by each write sent or confirmed
    let processingTypes = [];

    function isoDay(offset) {
      // The kiosk's own calendar day in the factory's time zone, plus offset days.
      const parts = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit", day: "2-digit" })
        .format(new Date()).split("-").map(Number);
      const d = new Date(Date.UTC(parts[0], parts[1] - 1, parts[2] + offset));
      return d.toISOString().slice(0, 10);
    }

    // --- the effective view of a step (server row + writes not yet confirmed) --------------

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

    // --- writes ------------------------------------------------------------------------------

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
      onWrite(id, field, "pending");
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
        onWrite(id, field, "ok");
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
      onWrite(id, field, w.state);
    }

    // the step's write state: pending, failed (retry), refused (why); "ok" when none is kept
    function writeState(id) {
      let state = "";
      let message = "";
      for (const w of writes.values()) {
        if (w.id !== id) continue;
        if (w.state === "failed") state = "failed";
        else if (w.state === "refused" && state !== "failed") { state = "refused"; message = w.message; }
        else if (w.state === "pending" && !state) state = "pending";
      }
      return { state: state || "ok", message };
    }

    // any write of the step still kept (pending, failed or refused): a page keeps such a step
    function hasWrites(id) {
      return Array.from(writes.values()).some((w) => w.id === id);
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

    // --- one step ----------------------------------------------------------------------------

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
      const { state, message } = writeState(id);
      parts.root.setAttribute("data-write", state);
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

    // --- editors (one modal dialog, built for the step it edits) -----------------------------

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

    return {
      byId,             // Map row id -> server row: the page puts the rows it shows here
      stepEls,          // Map row id -> rendered step's parts; the page deletes those it drops
      view,             // (id) -> {completed, note, due_date, processing, order}: row + unconfirmed writes
      buildStep,        // (id) -> a new <article data-testid="step"> for byId's row, kept up to date
      update,           // (id): re-render the step (after the page changed its row in byId)
      send,             // (id, field, value): an optimistic write; field is one of FIELDS' keys
      retry,            // (id): send the step's failed writes again
      dismiss,          // (id): forget the step's refused writes
      restore,          // (): take back the unsaved writes kept in localStorage, as "failed"
      writeState,       // (id) -> {state: "ok" | "pending" | "failed" | "refused", message}
      hasWrites,        // (id) -> whether any write of the step is kept (a page must keep its row)
      epoch: (id) => epochs.get(id) || 0, // bumped by each write of the step sent or confirmed
      setProcessingTypes: (list) => { processingTypes = list || []; }, // the processing editor's choices
      openEditor,       // (title, content, actions): the <dialog> with a close button
      openNote,         // (id) and the next four: one step's editors, as the chips open them
      openDue,
      openOrder,
      openProcessing,
      openChoice,       // (id, field, title, options, current)
      stepTitle,        // (id) -> "製番 品番 品名 (工順 n)" for an editor's title
      isoDay,           // (offset) -> "YYYY-MM-DD", today + offset in options.timezone
    };
  }

  csvboardSteps.el = el;
  csvboardSteps.cookie = cookie;
  csvboardSteps.problemText = problemText;
  // A GET of JSON for the pages beside the list; a refusal is an Error with its detail.
  csvboardSteps.getJson = async function getJson(path) {
    const res = await fetch(path, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error(await problemText(res));
    return res.json();
  };
  csvboardSteps.actionButton = actionButton;
  window.csvboardSteps = csvboardSteps;
})();
