// fractal explore: the page behind `fractal explore`. Vanilla JS, no network access beyond this server.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  run: null, dims: [64, 128, 192, 256], zoomIdx: 0, color: "coarse", corpus: null,
  map: null, mapCache: new Map(), points: [], rowToPoint: new Map(), lastSearch: null,
  searchSeq: 0, mapSeq: 0, palettes: {},
};

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { accept: "application/json" } });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
  return body;
}

function debounce(fn, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// ---------------------------------------------------------------- colours
// up to 12 coarse classes: a fixed set of well-separated colours; more (and fine classes):
// golden-angle hues with three lightness bands, so neighbouring class numbers differ clearly.
const DISTINCT = ["#d1495b", "#2e86ab", "#e9a23b", "#3b8b5a", "#8e5ea2", "#4a4a4a",
  "#9bb53c", "#8c5a2b", "#d36fb0", "#3f51b5", "#e0762b", "#00a6a6"];

function palette(n, fine) {
  if (!fine && n <= DISTINCT.length) return DISTINCT.slice(0, n);
  const out = [];
  for (let i = 0; i < n; i++) out.push(`hsl(${(i * 137.508) % 360}, 62%, ${[42, 55, 34][i % 3]}%)`);
  return out;
}

function levelColor(level, label) {
  const cl = state.corpus && state.corpus.classes[level];
  const pal = state.palettes[level];
  if (!cl || !pal) return "#8a95a2";
  const i = cl.indexOf(label);
  return i < 0 ? "#8a95a2" : pal[i];
}

// ---------------------------------------------------------------- zoom
function zoomDims() { return state.dims[state.zoomIdx]; }

function zoomName(i) {
  if (i === 0) return "coarse";
  if (i === state.dims.length - 1) return "fine";
  return "";
}

function renderZoom() {
  const d = zoomDims();
  const name = zoomName(state.zoomIdx);
  $("zoom-label").textContent = `${d} dims${name ? " · " + name : ""}`;
  $("map-zoom").textContent = d;
  document.querySelectorAll("#zoom-ticks span").forEach((s, i) => s.classList.toggle("on", i === state.zoomIdx));
  if (state.run) renderAccuracy(); // moves the marker of the current zoom
}

function setupZoom() {
  const z = $("zoom");
  z.max = String(state.dims.length - 1);
  z.value = String(state.zoomIdx);
  const ticks = $("zoom-ticks");
  ticks.textContent = "";
  state.dims.forEach((d, i) => {
    const name = zoomName(i);
    const s = el("span", { text: `${d}${name ? " · " + name : ""}`, "data-idx": String(i) });
    s.addEventListener("click", () => { z.value = String(i); onZoom(); });
    ticks.append(s);
  });
  renderZoom();
}

const zoomChanged = debounce(() => { search(); drawMapFor(); }, 120);

function onZoom() {
  state.zoomIdx = Number($("zoom").value);
  renderZoom();
  zoomChanged();
}

// ---------------------------------------------------------------- search
function clearResults(message) {
  state.lastSearch = null;
  $("results").textContent = "";
  $("results").removeAttribute("data-q");
  $("predicted").textContent = "";
  $("summary").textContent = message || "";
  drawMap();
}

async function search() {
  const q = $("q").value.trim();
  const seq = ++state.searchSeq;
  $("error").hidden = true;
  if (!q) { clearResults("Type a query to see its nearest neighbours in the corpus."); return; }
  const k = $("k").value || "10";
  const zoom = zoomDims();
  let res;
  try {
    res = await getJSON(`/api/search?q=${encodeURIComponent(q)}&zoom=${zoom}&k=${encodeURIComponent(k)}`);
  } catch (e) {
    if (seq !== state.searchSeq) return;
    $("error").textContent = e.message;
    $("error").hidden = false;
    return;
  }
  if (seq !== state.searchSeq) return; // a newer request is on its way
  renderResults(res);
}

function renderResults(res) {
  state.lastSearch = res;
  const levels = (state.run && state.run.index.levels) || [];
  const coarse = levels[0];
  const pred = res.predicted;
  const predBox = $("predicted");
  predBox.textContent = "";
  if (pred) {
    predBox.append(
      "Predicted ", el("strong", { text: pred.level }), ": ",
      el("span", { class: "swatch", style: `background:${levelColor(pred.level, pred.label)}` }),
      el("strong", { text: pred.label, id: "predicted-label" }),
      el("span", { class: "muted", text: ` (${pred.votes} of its ${pred.k} nearest neighbours at ${pred.zoom} dims)` }),
    );
  }
  const list = $("results");
  list.textContent = "";
  for (const h of res.hits) {
    const chips = el("div", { class: "chips" });
    for (const lv of levels) {
      const lab = h.labels ? h.labels[lv] : null;
      if (lab == null) continue;
      chips.append(el("span", { class: "chip", title: lv },
        el("span", { class: "dot", style: `background:${levelColor(lv, lab)}` }), `${lv}: ${lab}`));
    }
    if (h.in_predicted && pred) chips.append(el("span", { class: "tag", text: `✓ predicted ${pred.level}` }));
    const li = el("li", { class: "hit" + (h.in_predicted ? " in-pred" : ""), "data-row": String(h.row) },
      el("span", { class: "rank", text: String(h.rank) }),
      el("div", {}, el("div", { class: "text", text: h.text }), chips),
      el("span", { class: "score", title: "cosine of the prefixes", text: h.score.toFixed(3) }));
    if (coarse && h.labels) li.dataset.coarse = h.labels[coarse];
    if (levels.length && h.labels) li.dataset.fine = h.labels[levels[levels.length - 1]];
    if (h.in_predicted && pred) li.style.setProperty("--pred", levelColor(pred.level, pred.label));
    list.append(li);
  }
  const name = res.zoom_name === "intermediate" ? "" : ` (${res.zoom_name})`;
  let summary = `${res.hits.length} nearest at ${res.zoom} dims${name}`;
  if (pred) summary += ` · ${res.n_in_predicted} of ${res.hits.length} in the predicted ${pred.level} ${pred.label}`;
  $("summary").textContent = summary;
  // the state the page shows, for anyone (or any test) waiting on it
  list.dataset.q = res.query;
  list.dataset.zoom = String(res.zoom);
  list.dataset.k = String(res.k);
  drawMap();
}

// ---------------------------------------------------------------- map
async function drawMapFor() {
  const key = `${zoomDims()}|${state.color}`;
  const seq = ++state.mapSeq;
  let m = state.mapCache.get(key);
  if (!m) {
    try { m = await getJSON(`/api/map?zoom=${zoomDims()}&color=${state.color}`); }
    catch (e) { $("map-note").textContent = `map: ${e.message}`; return; }
    state.mapCache.set(key, m);
  }
  if (seq !== state.mapSeq) return;
  state.map = m;
  drawMap();
  renderLegend();
}

function renderLegend() {
  const m = state.map, box = $("legend");
  box.textContent = "";
  if (!m) return;
  const ex = m.explained.map((v) => (100 * v).toFixed(0) + "%").join(" + ");
  let note = `PCA of the L2-normalised ${m.zoom}-d prefixes (${ex} of the variance); ${m.n} points`;
  if (m.n < m.total) note += ` (a seeded sample of ${m.total})`;
  $("map-note").textContent = note + ". Hover a point for its text; ★ = the query, ringed = its hits.";
  if (!m.classes) return;
  const pal = state.palettes[m.level];
  if (m.classes.length <= 20) {
    m.classes.forEach((c, i) => box.append(el("span", {}, el("span", { class: "sw", style: `background:${pal[i]}` }), c)));
  } else {
    box.append(el("span", { class: "muted", text: `${m.classes.length} ${m.level} classes, one colour each (hover for names)` }));
  }
}

function drawMap() {
  const canvas = $("map"), m = state.map;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  state.points = [];
  if (!m) return;
  const pad = 12;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < m.x.length; i++) {
    x0 = Math.min(x0, m.x[i]); x1 = Math.max(x1, m.x[i]); y0 = Math.min(y0, m.y[i]); y1 = Math.max(y1, m.y[i]);
  }
  const s = Math.min((w - 2 * pad) / (x1 - x0 || 1), (h - 2 * pad) / (y1 - y0 || 1));
  const ox = (w - s * (x1 - x0)) / 2, oy = (h - s * (y1 - y0)) / 2;
  const px = (x) => ox + s * (x - x0), py = (y) => h - (oy + s * (y - y0));
  const pal = m.level ? state.palettes[m.level] : null;
  ctx.globalAlpha = 0.75;
  for (let i = 0; i < m.x.length; i++) {
    const X = px(m.x[i]), Y = py(m.y[i]);
    state.points.push([X, Y]);
    ctx.fillStyle = pal && m.c ? pal[m.c[i]] : "#7b8794";
    ctx.beginPath(); ctx.arc(X, Y, 2.4, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.globalAlpha = 1;
  const res = state.lastSearch;
  if (res && res.zoom === m.zoom) {
    ctx.strokeStyle = "#111"; ctx.lineWidth = 1.4;
    for (const hit of res.hits) {
      const i = state.rowToPoint.get(hit.row);
      if (i === undefined) continue;
      ctx.beginPath(); ctx.arc(state.points[i][0], state.points[i][1], 5, 0, 2 * Math.PI); ctx.stroke();
    }
    if (res.point) star(ctx, px(res.point.x), py(res.point.y));
  }
}

function star(ctx, x, y) {
  ctx.beginPath();
  for (let i = 0; i < 10; i++) {
    const r = i % 2 ? 4 : 10, a = -Math.PI / 2 + (i * Math.PI) / 5;
    ctx.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
  }
  ctx.closePath();
  ctx.fillStyle = "#ffd400"; ctx.strokeStyle = "#111"; ctx.lineWidth = 1.5;
  ctx.fill(); ctx.stroke();
}

function onMapHover(ev) {
  const tip = $("tooltip"), c = state.corpus;
  if (!state.points.length || !c) { tip.hidden = true; return; }
  const r = $("map").getBoundingClientRect();
  const x = ev.clientX - r.left, y = ev.clientY - r.top;
  let best = -1, bd = 49; // within 7 px
  for (let i = 0; i < state.points.length; i++) {
    const dx = state.points[i][0] - x, dy = state.points[i][1] - y, d = dx * dx + dy * dy;
    if (d < bd) { bd = d; best = i; }
  }
  if (best < 0) { tip.hidden = true; return; }
  tip.textContent = "";
  tip.append(el("div", { text: c.texts[best] }));
  const labs = c.levels.map((lv) => `${lv}: ${c.classes[lv][c.codes[lv][best]]}`).join(" · ");
  if (labs) tip.append(el("div", { class: "t-labels", text: labs }));
  tip.hidden = false;
  const wrap = $("map-wrap").getBoundingClientRect();
  const left = Math.min(x + 12, wrap.width - tip.offsetWidth - 4);
  tip.style.left = `${Math.max(0, left)}px`;
  tip.style.top = `${y + 14}px`;
}

// ---------------------------------------------------------------- accuracy panel
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text != null) e.textContent = text;
  return e;
}

function renderAccuracy() {
  const run = state.run, box = $("acc");
  box.textContent = "";
  const acc = run.accuracy, base = run.baseline_accuracy;
  if (!acc) { $("steer").textContent = "The run record has no accuracy table."; return; }
  const dims = Object.keys(acc).map(Number).sort((a, b) => a - b);
  const levels = run.levels;
  const W = 520, H = 170, L = 34, R = 140, T = 10, B = 26;
  let lo = 1;
  for (const tbl of [acc, base]) if (tbl) for (const d of dims) for (const lv of levels) {
    const v = tbl[String(d)] && tbl[String(d)][lv];
    if (typeof v === "number") lo = Math.min(lo, v);
  }
  lo = Math.max(0, Math.floor(lo * 10) / 10);
  const X = (i) => L + (dims.length > 1 ? (i * (W - L - R)) / (dims.length - 1) : (W - L - R) / 2);
  const Y = (v) => T + (1 - (v - lo) / (1 - lo || 1)) * (H - T - B);
  for (let t = lo; t <= 1.0001; t += 0.1) {
    box.append(svg("line", { x1: L, x2: W - R, y1: Y(t), y2: Y(t), class: "grid" }));
    box.append(svg("text", { x: L - 6, y: Y(t) + 3, "text-anchor": "end" }, t.toFixed(1)));
  }
  dims.forEach((d, i) => box.append(svg("text", { x: X(i), y: H - B + 14, "text-anchor": "middle" }, String(d))));
  box.append(svg("text", { x: (L + W - R) / 2, y: H - 2, "text-anchor": "middle" }, "prefix dims"));
  const zi = dims.indexOf(zoomDims());
  if (zi >= 0) box.append(svg("line", { x1: X(zi), x2: X(zi), y1: T, y2: H - B, stroke: "#3d7bd9", "stroke-dasharray": "2 3" }));
  const colors = levels.map((_, i) => (levels.length === 1 ? "#2b6cc4" : `hsl(${215 - (i * 185) / (levels.length - 1)}, 70%, 42%)`));
  let ly = T + 6;
  levels.forEach((lv, li) => {
    for (const [tbl, dash, label] of [[acc, null, lv], [base, "4 3", `${lv} (untrained)`]]) {
      if (!tbl) continue;
      const pts = dims.map((d, i) => [X(i), Y(tbl[String(d)][lv])]);
      const attrs = { points: pts.map((p) => p.join(",")).join(" "), fill: "none", stroke: colors[li],
        "stroke-width": dash ? 1.2 : 2.2, opacity: dash ? 0.6 : 1 };
      if (dash) attrs["stroke-dasharray"] = dash;
      box.append(svg("polyline", attrs));
      if (!dash) dims.forEach((d, i) => {
        const c = svg("circle", { cx: pts[i][0], cy: pts[i][1], r: 3, fill: colors[li] });
        c.append(svg("title", {}, `${lv} at ${d} dims: ${tbl[String(d)][lv].toFixed(3)}`));
        box.append(c);
      });
      const lx = W - R + 10;
      box.append(svg("line", { x1: lx, x2: lx + 16, y1: ly, y2: ly, stroke: colors[li], "stroke-width": dash ? 1.2 : 2.2,
        "stroke-dasharray": dash || "", opacity: dash ? 0.6 : 1 }));
      box.append(svg("text", { x: lx + 20, y: ly + 3 }, label));
      ly += 15;
    }
  });
  const st = run.steerability || {};
  const c = levels[0], f = levels[levels.length - 1], a = String(dims[0]), z = String(dims[dims.length - 1]);
  const s = $("steer");
  s.textContent = "";
  if (typeof st.S === "number") {
    const v = (x) => x.toFixed(3);
    s.append(el("strong", { text: `S = ${st.S.toFixed(3)}` }),
      ` = (A[${a}, ${c}] − A[${z}, ${c}]) + (A[${z}, ${f}] − A[${a}, ${f}]) = (${v(acc[a][c])} − ${v(acc[z][c])}) + (${v(acc[z][f])} − ${v(acc[a][f])})`);
    if (run.baseline_steerability && typeof run.baseline_steerability.S === "number")
      s.append(el("span", { class: "muted", text: `; untrained encoder S = ${run.baseline_steerability.S.toFixed(3)}` }));
  }
  const ev = run.eval || {};
  $("acc-note").textContent = `${ev.k || 5}-NN, ${ev.rows || "?"} ${ev.split || ""} rows (run record)`;
}

// ---------------------------------------------------------------- start
async function start() {
  try {
    state.run = await getJSON("/api/run");
  } catch (e) {
    $("run-line").textContent = `cannot load the run: ${e.message}`;
    return;
  }
  const run = state.run, ix = run.index, src = ix.source || {};
  let corpus = "";
  if (src.kind === "index") corpus = `index ${src.path}`;
  else if (src.corpus) corpus = src.corpus.kind === "run-dataset" ? `${src.corpus.name} ${src.corpus.split}` :
    `${src.corpus.path || src.corpus.name}${src.corpus.split ? " " + src.corpus.split : ""}`;
  $("run-line").textContent = `${run.run_id} · ${run.method} · ${run.encoder} · corpus: ${corpus} (${ix.size} items)`;
  state.dims = run.dims;
  setupZoom();
  const levels = ix.levels;
  if (ix.has_labels && levels.length) {
    $("color-coarse").textContent = levels[0];
    $("color-fine").textContent = levels[levels.length - 1];
    $("rule").textContent = `Predicted ${levels[0]} = the majority ${levels[0]} of the query's k nearest neighbours ` +
      `at the coarse zoom (${state.dims[0]} dims); hits in that ${levels[0]} are marked with a coloured bar.`;
  } else {
    $("color-toggle").hidden = true;
    $("rule").textContent = "This corpus has no labels: no predicted class, the map is not coloured.";
  }
  try {
    state.corpus = await getJSON("/api/corpus");
  } catch (e) {
    $("map-note").textContent = `corpus: ${e.message}`;
  }
  if (state.corpus) {
    for (const lv of state.corpus.levels) state.palettes[lv] = palette(state.corpus.classes[lv].length, lv !== state.corpus.levels[0]);
    state.corpus.rows.forEach((r, i) => state.rowToPoint.set(r, i));
  }
  $("q").addEventListener("input", debounce(search, 200));
  $("q").addEventListener("keydown", (e) => { if (e.key === "Enter") search(); });
  $("k").addEventListener("change", search);
  $("k").addEventListener("input", debounce(search, 300));
  $("zoom").addEventListener("input", onZoom);
  $("zoom").addEventListener("change", onZoom);
  document.querySelectorAll("input[name=color]").forEach((r) => r.addEventListener("change", () => {
    state.color = r.value; drawMapFor();
  }));
  $("map").addEventListener("mousemove", onMapHover);
  $("map").addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
  window.addEventListener("resize", debounce(drawMap, 100));
  clearResults("Type a query to see its nearest neighbours in the corpus.");
  await drawMapFor();
  document.body.dataset.ready = "1";
  if ($("q").value.trim()) search();
}

start();
