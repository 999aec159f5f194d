// The dashboard: polls the JSON endpoints every two seconds and redraws.
"use strict";
const REFRESH_MS = 2000;
let selected = new URLSearchParams(location.search).get("factory");
const charts = {};

async function get(path) {
  const resp = await fetch(path, { cache: "no-store" });
  if (!resp.ok) throw new Error(path + ": HTTP " + resp.status);
  return resp.json();
}

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawList(factories) {
  const body = document.querySelector("#factories tbody");
  body.replaceChildren();
  if (!selected && factories.length) selected = factories[factories.length - 1].id;
  for (const f of factories) {
    const row = el("tr", { class: "factory" + (f.id === selected ? " selected" : ""),
                           "data-id": f.id });
    const units = f.units_wanted ? `${f.units_acquired}/${f.units_wanted}` : `${f.units_acquired}`;
    for (const cell of [f.id, f.target, f.status, units, f.credits_spent.toLocaleString("en")]) {
      row.append(el("td", {}, cell));
    }
    row.addEventListener("click", () => { selected = f.id; refresh(); });
    body.append(row);
  }
}

function drawNode(node) {
  const li = el("li", { class: "node", "data-good": node.good });
  const task = node.task;
  const state = task ? task.state : "PLANNED";
  li.append(el("span", { class: "state " + state }, state));
  let text = ` ${node.good} — ${node.acquisition_method}` + (node.waypoint ? ` at ${node.waypoint}` : "");
  if (task) {
    text += ` · bought ${task.units_bought}, delivered ${task.units_delivered}, cost ${task.cost}`;
    if (task.ships.length) text += ` · ${task.ships.join(", ")}`;
    if (task.waiting_seconds) text += ` · waiting ${Math.round(task.waiting_seconds)} s`;
  }
  li.append(document.createTextNode(text));
  if (node.children.length) {
    const ul = el("ul");
    node.children.forEach((c) => ul.append(drawNode(c)));
    li.append(ul);
  }
  return li;
}

function drawDetail(detail) {
  const s = detail.status;
  document.getElementById("detail").hidden = false;
  document.getElementById("title").textContent = `${s.id}: ${s.target} (${s.status})`;
  document.getElementById("summary").textContent =
    `${s.units_acquired}${s.units_wanted ? "/" + s.units_wanted : ""} units, ` +
    `${s.credits_spent.toLocaleString("en")} credits spent, to ${s.destination}` +
    (s.error ? ` — ${s.error}` : "");
  const tree = document.getElementById("tree");
  tree.replaceChildren();
  if (s.tree) tree.append(drawNode(s.tree));
}

function drawMap(data) {
  const map = document.getElementById("map");
  map.replaceChildren();
  const xs = data.waypoints.map((w) => w.x), ys = data.waypoints.map((w) => w.y);
  if (!xs.length) return;
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const scale = 560 / Math.max(maxX - minX, maxY - minY, 1);
  const px = (x) => 20 + (x - minX) * scale, py = (y) => 20 + (y - minY) * scale;
  for (const w of data.waypoints) {
    const cls = w.in_tree ? "waypoint in-tree" : w.market ? "waypoint market" : "waypoint";
    const dot = svg("circle", { cx: px(w.x), cy: py(w.y), r: w.in_tree ? 6 : 3, class: cls,
                                "data-symbol": w.symbol });
    dot.append(svg("title", {}, `${w.symbol} (${w.type})`));
    map.append(dot);
    if (w.in_tree) map.append(svg("text", { x: px(w.x) + 8, y: py(w.y) + 3 }, w.symbol));
  }
  for (const s of data.ships) {
    if (s.status === "IN_TRANSIT" && s.from) {
      map.append(svg("line", { x1: px(s.from[0]), y1: py(s.from[1]), x2: px(s.to[0]),
                               y2: py(s.to[1]), class: "route" }));
    }
    const x = px(s.x), y = py(s.y);
    const ship = svg("polygon", { points: `${x},${y - 6} ${x - 5},${y + 5} ${x + 5},${y + 5}`,
                                  class: "ship", "data-ship": s.ship });
    ship.append(svg("title", {}, `${s.ship} ${s.status} ${s.waypoint}`));
    map.append(ship);
  }
}

function line(id, label, points, yKey = 1) {
  const data = points.map((p) => ({ x: Date.parse(p[0]), y: p[yKey] }));
  const config = {
    type: "line",
    data: { datasets: [{ label, data, stepped: true, pointRadius: 2 }] },
    options: { animation: false, parsing: false,
      scales: { x: { type: "linear", ticks: { callback: (v) => new Date(v).toLocaleTimeString() } } } },
  };
  const canvas = document.getElementById(id);
  if (charts[id]) {
    charts[id].data.datasets[0].data = data;
    charts[id].update();
  } else {
    charts[id] = new Chart(canvas, config);
  }
  canvas.dataset.points = String(data.length);
  canvas.dataset.last = data.length ? String(data[data.length - 1].y) : "";
}

function drawCharts(data) {
  line("credits", "credits", data.credits);
  line("units", "units", data.units);
  const box = document.getElementById("markets");
  for (const m of data.markets) {
    const id = `m-${m.good}-${m.waypoint}`;
    if (!document.getElementById(id + "-supply")) {
      for (const kind of ["supply", "price"]) {
        const fig = el("figure");
        fig.append(el("figcaption", {}, `${m.good} at ${m.waypoint}: ${kind}`));
        fig.append(el("canvas", { id: `${id}-${kind}`, class: "market-chart" }));
        box.append(fig);
      }
    }
    line(`${id}-supply`, "supply (1 SCARCE … 5 ABUNDANT)", m.points, 1);
    line(`${id}-price`, "purchase price", m.points, 2);
  }
}

async function refresh() {
  try {
    const factories = await get("/api/factories");
    drawList(factories);
    if (selected) {
      const base = "/api/factories/" + encodeURIComponent(selected);
      const [detail, map, chartData] = await Promise.all([get(base), get(base + "/map"),
                                                          get(base + "/charts")]);
      drawDetail(detail);
      drawMap(map);
      drawCharts(chartData);
    }
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (err) {
    document.getElementById("updated").textContent = String(err);
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
