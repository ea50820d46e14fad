// The board: /api/board read every few seconds, drawn with text only (textContent, never
// HTML from a payload), a tile per camera, the device's facts and its last hours in uPlot.
"use strict";

const every = Number(document.body.dataset.everyMs) || 2000;
const devices = new Map();  // root -> {section, tiles: Map, plots: [...]}
const plotted = {};  // root -> points in its plots now (read by the browser test)
window.edgeswinPlotted = plotted;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}

const PLOTS = [
  {title: "classifications per second", series: [["fps", "per s", "#1a73e8"]]},
  {title: "inference latency (ms)", series: [["p50_ms", "p50", "#1b7a3a"], ["p95_ms", "p95", "#b3261e"]]},
  {title: "temperature (°C) and power (W)", series: [["temp_c", "°C", "#8a5a00"], ["power_w", "W", "#6a1b9a"]]},
  {title: "rung (0 = primary)", series: [["rung", "rung", "#5f6368"]]},
];

function makePlot(holder, spec) {
  const box = el("div", "plot");
  box.append(el("h3", null, spec.title));
  holder.append(box);
  const opts = {
    width: 420, height: 160,
    series: [{}].concat(spec.series.map(([, label, stroke]) => ({label, stroke, width: 1.5, spanGaps: true}))),
    axes: [{}, {size: 50}],
  };
  return {spec, plot: new uPlot(opts, [[], ...spec.series.map(() => [])], box)};
}

function device(root) {
  let d = devices.get(root);
  if (d) return d;
  const section = el("section", "device");
  section.setAttribute("aria-label", "device " + root);
  const head = el("h2");
  const status = el("span", "badge none", "?");
  head.append(el("span", null, root + " "), status);
  const facts = el("p", "facts");
  const health = el("p", "facts");
  const problems = el("ul", "problems");
  const notes = el("ul", "notes");
  const tiles = el("div", "tiles");
  const plots = el("div", "plots");
  section.append(head, facts, health, problems, notes, tiles, plots);
  document.getElementById("devices").append(section);
  d = {section, status, facts, health, problems, notes, tiles, tileMap: new Map(),
       plots: PLOTS.map((spec) => makePlot(plots, spec))};
  devices.set(root, d);
  return d;
}

function list(node, items) {
  node.replaceChildren(...items.map((text) => el("li", null, text)));
}

function tile(d, root, cam) {
  let t = d.tileMap.get(cam.name);
  if (!t) {
    const box = el("article", "tile");
    box.tabIndex = 0;
    const img = el("img");
    img.alt = "camera " + cam.name;
    const name = el("h3", null, cam.name);
    const label = el("div", "label");
    const since = el("div", "facts");
    const regions = el("ul");
    const health = el("div", "health");
    const availability = el("div", "facts");
    const timeline = el("ol", "timeline");
    box.append(img, name, label, since, regions, health, availability, timeline);
    d.tiles.append(box);
    t = {box, img, label, since, regions, health, availability, timeline, shown: null};
    d.tileMap.set(cam.name, t);
  }
  const whole = cam.units.find((u) => u.region === null);
  t.label.textContent = whole ? `${whole.label} ${(whole.score ?? 0).toFixed(2)}` : (cam.units.length ? "" : "no label yet");
  t.since.textContent = whole ? "since " + whole.since : "";
  list(t.regions, cam.units.filter((u) => u.region !== null)
    .map((u) => `${u.region}: ${u.label} ${(u.score ?? 0).toFixed(2)} since ${u.since}`));
  const problems = cam.health.problems || [];
  t.health.className = "health " + (problems.length ? "bad" : cam.health.ok ? "ok" : "");
  t.health.textContent = problems.length
    ? "health: " + problems.map((p) => `${p.kind} since ${p.since}`).join(", ")
    : cam.health.ok ? "health: ok" : "health: not judged yet";
  t.availability.textContent = "stream " + (cam.availability || "unknown");
  t.box.classList.toggle("problem", problems.length > 0);
  t.box.classList.toggle("offline", cam.availability !== "online");
  t.box.setAttribute("aria-label", `camera ${cam.name}: ${t.label.textContent}; ${t.health.textContent}; stream ${cam.availability || "unknown"}`);
  // The health snapshot while a problem holds, else the newest picture.
  const pics = cam.pictures || {};
  const unit = problems.length && pics[cam.name + "/health"] ? cam.name + "/health"
    : pics[cam.name] ? cam.name : Object.keys(pics)[0];
  const want = unit ? `${unit}@${pics[unit]}` : null;
  if (want !== t.shown) {
    t.shown = want;
    if (unit) {
      const q = new URLSearchParams({device: root, unit, at: String(pics[unit])});
      t.img.src = "picture?" + q.toString();
    } else {
      t.img.removeAttribute("src");
    }
  }
  return t;
}

function draw(state) {
  const seen = new Set();
  let bad = 0;
  for (const dev of state.devices) {
    seen.add(dev.root);
    const d = device(dev.root);
    const online = dev.status === "online";
    d.status.textContent = dev.status || "no status";
    d.status.className = "badge " + (online ? (dev.problems.length ? "warn" : "ok") : "bad");
    if (!online || dev.problems.length) bad++;
    const e = dev.engine;
    const levels = e && e.levels ? Object.entries(e.levels).map(([k, v]) => `${k} ${v}`).join(", ") : "";
    const builds = e && e.builds && typeof e.builds === "object"
      ? Object.entries(e.builds).map(([n, b]) => `${n} ${b.state}${b.state === "building" ? ` (${b.step}, ${b.elapsed_s} s)` : ""}`) : [];
    const skipped = e && e.skipped && typeof e.skipped === "object"
      ? Object.entries(e.skipped).map(([n, why]) => `${n} skipped: ${why}`) : [];
    d.facts.textContent = e && typeof e === "object" && !Array.isArray(e)
      ? (e.rung === null || e.rung === undefined ? "no engine serves yet" : `rung ${e.rung} ${e.name} (${e.backend}, ${e.precision})`)
        + ` — ${e.reason}` + (levels ? ` — levers: ${levels}` : "")
        + (builds.length ? ` — builds: ${builds.join(", ")}` : "")
        + (skipped.length ? ` — ${skipped.join("; ")}` : "")
      : "engine: not said yet";
    const c = dev.canary;
    const temps = dev.temps_c ? Object.entries(dev.temps_c).map(([k, v]) => `${k} ${v} °C`).join(", ") : "";
    const watts = dev.power && dev.power.total_w !== null && dev.power.total_w !== undefined ? `${dev.power.total_w} W` : "";
    d.health.textContent = [
      c ? (c.ok ? `canary ok (${c.checked} images)` : `canary FAILING on ${c.engine}`) : "canary -",
      dev.rollout ? `rollout ${dev.rollout.state} on rung ${dev.rollout.rung}` : "",
      dev.fleet ? `fleet bundle ${dev.fleet.version} (${dev.fleet.group}): ${dev.fleet.state}` : "",
      temps, watts,
      dev.stats_age_s !== null ? `stats ${Math.round(dev.stats_age_s)} s ago` : "no stats yet",
    ].filter(Boolean).join(" · ");
    list(d.problems, dev.problems);
    list(d.notes, dev.notes);
    const names = new Set();
    for (const cam of dev.cameras) {
      names.add(cam.name);
      const t = tile(d, dev.root, cam);
      const changes = (dev.timeline[cam.name] || []).slice(-5).reverse();
      list(t.timeline, changes.map(([at, label]) => `${clock(at)} ${label}`));
    }
    for (const [name, t] of d.tileMap) {
      if (!names.has(name)) { t.box.remove(); d.tileMap.delete(name); }
    }
    const xs = dev.points.map((p) => p.t);
    for (const {spec, plot} of d.plots) {
      plot.setData([xs, ...spec.series.map(([key]) => dev.points.map((p) => p[key]))]);
    }
    plotted[dev.root] = xs.length;
  }
  for (const [root, d] of devices) {
    if (!seen.has(root)) { d.section.remove(); devices.delete(root); }
  }
  const n = state.devices.length;
  document.getElementById("summary").textContent = n
    ? `${n} device(s): ` + (bad ? `${bad} with problems` : "all well") + ` — ${new Date().toLocaleTimeString()}`
    : "no device yet";
}

async function poll() {
  try {
    const answer = await fetch("api/board", {cache: "no-store"});
    if (!answer.ok) throw new Error(`${answer.status}`);
    draw(await answer.json());
  } catch (err) {
    document.getElementById("summary").textContent = "the board's server does not answer: " + err.message;
  }
  setTimeout(poll, every);
}

poll();
