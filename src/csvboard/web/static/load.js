// csvboard 負荷: for a planner with a week to fill. A chart (Chart.js, vendored in
// static/vendor: kiosks and offices are often offline) of one resource's required hours per
// week of their due date — overdue first, then this week on, later, and the steps without a
// due date — with its weekly capacity as a line; overloaded weeks are red. The table below
// has every resource and week (the same numbers as GET …/load), the overloaded cells marked;
// an admin sets a resource's capacity in it (PUT /api/v1/dashboards/{slug}/capacities/{resource}).
//
// Text from the server is only ever set with textContent (never innerHTML).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const base = "/api/v1/schedules/" + encodeURIComponent(config.slug);
  const table = document.getElementById("load-table");
  const canEdit = table.getAttribute("data-can-edit") === "true";
  const OVER = "#d92d20";
  const OK = "#2e90fa";
  let doc = null;
  let chosen = null;
  let chart = null;
  const { el, cookie } = window.csvboardDom;

  function showError(message) {
    const box = document.getElementById("load-error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function problem(res) {
    try { return (await res.json()).detail || res.statusText; } catch (e) { return res.statusText; }
  }

  function fmt(hours) {
    return hours === null || hours === undefined ? "—" : (Math.round(hours * 10) / 10).toLocaleString();
  }

  function labels() {
    return [t.load_overdue, ...doc.weeks.map((w) => w.slice(5)), t.load_later, t.load_no_due];
  }

  function series(r) {
    return [r.overdue_hours, ...r.week_hours, r.later_hours, r.no_due_date_hours];
  }

  function drawChart() {
    const r = doc.resources.find((x) => x.resource_cd === chosen);
    const canvas = document.getElementById("load-chart");
    if (!r || !window.Chart) return;
    const over = new Set(r.overloaded_weeks);
    const colours = ["#98a2b3", ...doc.weeks.map((w) => (over.has(w) ? OVER : OK)), "#98a2b3", "#667085"];
    const datasets = [{ type: "bar", label: t.load_hours, data: series(r), backgroundColor: colours }];
    if (r.weekly_hours !== null) {
      datasets.push({
        type: "line", label: t.load_capacity, borderColor: "#101828", pointRadius: 0,
        data: [null, ...doc.weeks.map(() => r.weekly_hours), null, null],
      });
    }
    if (chart) chart.destroy();
    chart = new window.Chart(canvas, {
      data: { labels: labels(), datasets },
      options: { animation: false, maintainAspectRatio: false, plugins: { legend: { position: "bottom" } } },
    });
    canvas.setAttribute("data-resource", chosen);
    canvas.setAttribute("data-overloaded", String(r.overloaded_weeks.length));
  }

  function renderChoices() {
    const box = document.getElementById("load-resources");
    box.replaceChildren(...doc.resources.map((r) => {
      const b = el("button", {
        type: "button", class: "btn scope-btn", "data-testid": "load-resource", "data-resource": r.resource_cd,
        "aria-pressed": r.resource_cd === chosen ? "true" : "false",
      }, `${r.resource_cd} ${r.resource_name || ""}`.trim());
      b.addEventListener("click", () => { chosen = r.resource_cd; renderChoices(); drawChart(); });
      return b;
    }));
  }

  async function saveCapacity(code, input) {
    const value = input.value.trim();
    const res = await fetch(`/api/v1/dashboards/${encodeURIComponent(config.slug)}/capacities/${encodeURIComponent(code)}`, {
      method: "PUT", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": cookie("csvboard_csrf") },
      body: JSON.stringify({ weekly_hours: value === "" ? null : Number(value) }),
    }).catch(() => null);
    if (!res || !res.ok) {
      showError(res ? await problem(res) : t.write_failed);
      return;
    }
    showError("");
    await load();
  }

  function renderTable() {
    const head = el("tr", null, el("th", null, t.resource), el("th", null, t.load_capacity),
      ...labels().map((l) => el("th", null, l)));
    const rows = doc.resources.map((r) => {
      const over = new Set(r.overloaded_weeks);
      let capacity;
      if (canEdit) {
        const input = el("input", { type: "number", min: "0.25", step: "0.25", "data-testid": "capacity-input", value: r.weekly_hours === null ? "" : String(r.weekly_hours) });
        const save = el("button", { type: "button", class: "btn small", "data-testid": "capacity-save" }, t.save);
        save.addEventListener("click", () => saveCapacity(r.resource_cd, input));
        capacity = el("td", null, input, save);
      } else {
        capacity = el("td", { "data-testid": "capacity" }, r.weekly_hours === null ? t.load_not_set : fmt(r.weekly_hours));
      }
      const cells = series(r).map((h, i) => {
        const week = i >= 1 && i <= doc.weeks.length ? doc.weeks[i - 1] : null;
        const isOver = week !== null && over.has(week);
        return el("td", { class: isOver ? "over" : "", "data-over": isOver ? "true" : "false", title: isOver ? t.load_over : "" }, fmt(h));
      });
      return el("tr", { "data-testid": "load-row", "data-resource": r.resource_cd },
        el("td", null, `${r.resource_cd} ${r.resource_name || ""}`.trim()), capacity, ...cells);
    });
    table.replaceChildren(el("thead", null, head), el("tbody", null, ...rows));
    table.setAttribute("data-state", "ready");
  }

  async function load() {
    const res = await fetch(`${base}/load`, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } }).catch(() => null);
    if (!res || !res.ok) {
      showError(`${t.load_failed}: ${res ? await problem(res) : ""}`);
      return;
    }
    doc = await res.json();
    if (!chosen || !doc.resources.some((r) => r.resource_cd === chosen)) {
      const first = doc.resources.find((r) => r.overloaded_weeks.length) || doc.resources[0];
      chosen = first ? first.resource_cd : null;
    }
    renderChoices();
    renderTable();
    drawChart();
  }

  document.getElementById("load-dashboard").textContent = config.slug;
  load();
})();
