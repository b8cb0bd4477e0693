// csvboard signage: a full-screen, read-only board for the shop floor's TV. It rotates between
// the registered 製番' progress and the resources' boards (a few resources a view), refreshes
// itself every refresh_seconds (30 s by default) without a tap, and renders no control.
//
// The server computes one snapshot per 30 s for every screen (GET …/signage; ETag → 304 when
// this screen already shows it). When the server cannot be reached the screen keeps its last
// good picture and says how old it is, instead of going blank.
//
// Text from the server is only ever set with textContent (never innerHTML).
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const t = config.t;
  const url = "/api/v1/schedules/" + encodeURIComponent(config.slug) + "/signage";
  const REFRESH_MS = (config.refresh_seconds || 30) * 1000;
  const ROTATE_MS = (config.rotate_seconds || 15) * 1000;
  const SEIBANS_PER_VIEW = 12;
  const RESOURCES_PER_VIEW = 3;
  const main = document.getElementById("signage");
  const staleBox = document.getElementById("signage-stale");

  let snapshot = null;
  let etag = null;
  let lastGood = 0;      // Date.now() of the last answer (200 or 304)
  let views = [];
  let current = 0;
  const el = window.csvboardDom.el;

  function seibanView(items) {
    return el("div", { class: "sg-seibans", "data-testid": "sg-seibans" }, ...items.map((s) => {
      const pct = s.total ? Math.round((100 * s.completed) / s.total) : 0;
      const fill = el("div", { class: "fill" });
      fill.style.width = pct + "%";
      let parts = s.open_parts.join("、");
      if (s.more_open_parts) parts += " " + t.signage_more_parts.replace("{n}", String(s.more_open_parts));
      return el("div", { class: "sg-seiban", "data-testid": "sg-seiban", "data-fseiban": s.fseiban },
        el("span", { class: "name" }, s.fseiban),
        el("div", { class: "bar" }, fill),
        el("span", { class: "pct", "data-testid": "sg-pct" }, pct + "%"),
        el("span", { class: "parts", "data-testid": "sg-parts" }, `${s.machine_name || ""} ${parts}`.trim()));
    }));
  }

  function resourceView(items) {
    return el("div", { class: "sg-resources", "data-testid": "sg-resources" }, ...items.map((r) =>
      el("section", { class: "sg-resource", "data-testid": "sg-resource", "data-resource": r.resource_cd },
        el("h2", null, `${r.resource_cd} ${r.resource_name || ""}`.trim()),
        el("ol", null, ...r.steps.map((s) => el("li", { "data-testid": "sg-step" },
          `${s.order ? "[" + s.order + "] " : ""}${s.fseiban} ${s.fhinmei}${s.due_date ? " (" + s.due_date + ")" : ""}`)),
          r.more ? el("li", { class: "more" }, t.signage_more_steps) : null))));
  }

  function chunks(list, n) {
    const out = [];
    for (let i = 0; i < list.length; i += n) out.push(list.slice(i, i + n));
    return out;
  }

  function buildViews() {
    views = [
      ...chunks(snapshot.seibans, SEIBANS_PER_VIEW).map((c) => ["progress", () => seibanView(c)]),
      ...chunks(snapshot.resources, RESOURCES_PER_VIEW).map((c) => ["resources", () => resourceView(c)]),
    ];
    if (current >= views.length) current = 0;
  }

  function show() {
    if (!views.length) return;
    const [name, build] = views[current % views.length];
    main.replaceChildren(build());
    main.setAttribute("data-view", name);
  }

  function showAge() {
    const updated = snapshot ? new Date(snapshot.generated_at) : null;
    document.getElementById("signage-updated").textContent = updated
      ? updated.toLocaleTimeString(config.lang === "ja" ? "ja-JP" : "en-GB", { timeZone: config.timezone, hour: "2-digit", minute: "2-digit" })
      : "…";
    const stale = lastGood && Date.now() - lastGood > REFRESH_MS * 1.5;
    main.setAttribute("data-stale", stale ? "true" : "false");
    staleBox.hidden = !stale;
    if (stale && updated) {
      const minutes = Math.max(0, Math.floor((Date.now() - updated.getTime()) / 60000));
      staleBox.textContent = t.signage_stale.replace("{age}", String(minutes));
    }
  }

  async function refresh() {
    try {
      const headers = { Accept: "application/json" };
      if (etag) headers["If-None-Match"] = etag;
      const res = await fetch(url, { credentials: "same-origin", cache: "no-store", headers });
      if (res.status === 200) {
        snapshot = await res.json();
        etag = res.headers.get("ETag");
        buildViews();
        show();
        main.setAttribute("data-state", "ready");
      } else if (res.status !== 304) {
        throw new Error("HTTP " + res.status);
      }
      lastGood = Date.now();
    } catch (e) {
      // keep the last good picture; showAge() says how old it is
    }
    showAge();
  }

  setInterval(() => { current += 1; show(); }, ROTATE_MS);
  setInterval(refresh, REFRESH_MS);
  setInterval(showAge, 5000);
  refresh();
})();
