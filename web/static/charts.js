// Hand-written SVG charts: lines over time (quality per dimension), bars (tasks per second), and a
// meter (spend against a budget). Each draws into the element it is given, replacing what was there.

const SVG = "http://www.w3.org/2000/svg";
export const COLOURS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#dc2626", "#4b5563"];

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function size(svg) {
  const [, , w, h] = (svg.getAttribute("viewBox") || "0 0 600 160").split(/\s+/).map(Number);
  return { w, h };
}

function text(parent, x, y, content, attrs = {}) {
  const t = el("text", { x, y, ...attrs }, parent);
  t.textContent = content;
  return t;
}

// series: [{name, points: [[x (ms since epoch), y or null], ...]}], y in [0, yMax].
export function lineChart(svg, series, { yMax = 1, empty = "nothing to show yet" } = {}) {
  svg.replaceChildren();
  const { w, h } = size(svg);
  const left = 40;
  const bottom = 22;
  const top = 8;
  const right = 10;
  const xs = series.flatMap((s) => s.points.filter((p) => p[1] != null).map((p) => p[0]));
  for (let i = 0; i <= 4; i += 1) {
    const y = top + ((h - top - bottom) * i) / 4;
    el("line", { x1: left, x2: w - right, y1: y, y2: y, class: "grid" }, svg);
    text(svg, left - 6, y + 4, (yMax * (1 - i / 4)).toFixed(2), { class: "axis", "text-anchor": "end" });
  }
  if (!xs.length) {
    text(svg, w / 2, h / 2, empty, { class: "axis", "text-anchor": "middle", "data-testid": "chart-empty" });
    return;
  }
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (x0 === x1) {
    x0 -= 1800e3;
    x1 += 1800e3;
  }
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (w - left - right);
  const sy = (y) => top + (1 - Math.max(0, Math.min(yMax, y)) / yMax) * (h - top - bottom);
  for (const at of [x0, (x0 + x1) / 2, x1]) {
    const d = new Date(at);
    text(svg, sx(at), h - 6, `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`,
      { class: "axis", "text-anchor": "middle" });
  }
  series.forEach((s, i) => {
    const colour = s.colour || COLOURS[i % COLOURS.length];
    const pts = s.points.filter((p) => p[1] != null);
    const g = el("g", { "data-testid": `series-${s.name}`, "data-points": pts.length }, svg);
    if (pts.length > 1) {
      el("polyline", { points: pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none", stroke: colour,
        "stroke-width": s.name === "overall" ? 2.5 : 1.5 }, g);
    }
    for (const [x, y] of pts) {
      const c = el("circle", { cx: sx(x), cy: sy(y), r: 3, fill: colour }, g);
      el("title", {}, c).textContent = `${s.name} ${y.toFixed(3)} at ${new Date(x).toLocaleString()}`;
    }
  });
}

// values: numbers, oldest first, one bar each.
export function barChart(svg, values, { label = (v) => String(v) } = {}) {
  svg.replaceChildren();
  const { w, h } = size(svg);
  const max = Math.max(1, ...values);
  const bw = w / Math.max(values.length, 1);
  values.forEach((v, i) => {
    if (!v) return;
    const bh = (v / max) * (h - 16);
    el("rect", { x: i * bw, y: h - bh, width: Math.max(bw - 1, 1), height: bh, class: "bar" }, svg);
  });
  text(svg, w - 4, 12, `max ${label(max)}`, { class: "axis", "text-anchor": "end" });
}

// A bar filled to spent / budget, red past 100%.
export function meter(spent, budget) {
  const box = document.createElement("div");
  box.className = "meter";
  const fill = document.createElement("div");
  const ratio = budget ? spent / budget : 0;
  fill.style.width = `${Math.min(100, ratio * 100)}%`;
  fill.className = ratio >= 1 ? "over" : ratio >= 0.8 ? "near" : "";
  box.appendChild(fill);
  box.title = budget ? `${(ratio * 100).toFixed(1)}% of the budget` : "no budget set";
  return box;
}
