// A run's DAG as SVG: tasks in columns by depth (a task sits right of everything it depends on), edges
// from each dependency to its dependent, each node coloured by its state and updated in place.

const SVG = "http://www.w3.org/2000/svg";
const W = 132;
const H = 30;
const GAP_X = 44;
const GAP_Y = 12;
const PAD = 8;
export const MAX_DRAWN = 300; // a run with more tasks is shown as counts by state

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

// Column of each task: 0 for one with no (known) dependency, else one past its deepest dependency.
function depths(tasks) {
  const depth = new Map();
  const visiting = new Set();
  const of = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle (the validator refuses those): draw it anyway
    visiting.add(id);
    const deps = (tasks.get(id)?.deps || []).filter((d) => tasks.has(d));
    const d = deps.length ? 1 + Math.max(...deps.map(of)) : 0;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const id of tasks.keys()) of(id);
  return depth;
}

export function layout(tasks) {
  const depth = depths(tasks);
  const columns = [];
  for (const id of tasks.keys()) {
    const d = depth.get(id);
    (columns[d] ||= []).push(id);
  }
  const row = new Map();
  columns.forEach((ids, c) => {
    if (c > 0) {
      // Order a column by where its dependencies sit, so edges cross less.
      const at = (id) => {
        const rows = (tasks.get(id).deps || []).filter((d) => row.has(d)).map((d) => row.get(d));
        return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
      };
      ids.sort((a, b) => at(a) - at(b));
    }
    ids.forEach((id, r) => row.set(id, r));
  });
  const pos = new Map();
  const tallest = Math.max(1, ...columns.map((ids) => ids.length));
  columns.forEach((ids, c) => {
    const offset = ((tallest - ids.length) * (H + GAP_Y)) / 2;
    ids.forEach((id, r) => pos.set(id, { x: PAD + c * (W + GAP_X), y: PAD + offset + r * (H + GAP_Y) }));
  });
  return { pos, width: PAD * 2 + columns.length * (W + GAP_X) - GAP_X, height: PAD * 2 + tallest * (H + GAP_Y) - GAP_Y };
}

function label(id) {
  return id.length > 17 ? `${id.slice(0, 16)}…` : id;
}

function describe(t) {
  const parts = [`${t.id}: ${t.state}`];
  if (t.attempts) parts.push(`attempt ${t.attempts} of ${t.maxAttempts}`);
  if (t.model) parts.push(t.model);
  if (t.quality != null) parts.push(`quality ${t.quality.toFixed(2)}`);
  if (t.durationMs != null) parts.push(`${Math.round(t.durationMs)} ms`);
  if (t.reason) parts.push(t.reason);
  return parts.join(" · ");
}

// Draws `run`'s DAG into `container`; returns update(), which recolours the nodes from the run's tasks.
export function drawDag(container, run, onPick) {
  container.replaceChildren();
  if (run.tasks.size > MAX_DRAWN) return drawCounts(container, run);
  const { pos, width, height } = layout(run.tasks);
  const svg = el("svg", { class: "dag", "data-testid": "dag", viewBox: `0 0 ${Math.max(width, 1)} ${Math.max(height, 1)}`,
    width: Math.max(width, 1), height: Math.max(height, 1) }, container);
  const edges = el("g", { class: "edges" }, svg);
  for (const [id, t] of run.tasks) {
    const to = pos.get(id);
    for (const dep of t.deps) {
      const from = pos.get(dep);
      if (!from) continue;
      const x1 = from.x + W;
      const y1 = from.y + H / 2;
      const x2 = to.x;
      const y2 = to.y + H / 2;
      const mid = (x1 + x2) / 2;
      el("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, "data-from": dep, "data-to": id }, edges);
    }
  }
  const nodes = new Map();
  for (const [id, t] of run.tasks) {
    const { x, y } = pos.get(id);
    const g = el("g", { class: "node", transform: `translate(${x},${y})`, "data-testid": `task-${id}`, "data-task": id,
      tabindex: "0", role: "button" }, svg);
    el("rect", { width: W, height: H, rx: 5 }, g);
    const text = el("text", { x: 8, y: H / 2 + 4 }, g);
    text.textContent = label(id);
    const title = el("title", {}, g);
    g.addEventListener("click", () => onPick && onPick(id));
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && onPick) onPick(id);
    });
    nodes.set(id, { g, title, t });
  }
  const update = () => {
    for (const [id, { g, title }] of nodes) {
      const t = run.tasks.get(id);
      if (!t) continue;
      if (g.getAttribute("data-state") !== t.state) {
        g.setAttribute("data-state", t.state);
        g.setAttribute("class", `node state-${t.state}`);
      }
      g.setAttribute("data-history", t.history.join(" "));
      title.textContent = describe(t);
    }
  };
  update();
  return update;
}

function drawCounts(container, run) {
  const box = document.createElement("div");
  box.className = "dag-summary";
  box.setAttribute("data-testid", "dag-summary");
  container.appendChild(box);
  const update = () => {
    const counts = {};
    for (const t of run.tasks.values()) counts[t.state] = (counts[t.state] || 0) + 1;
    box.replaceChildren(...Object.entries(counts).sort().map(([state, n]) => {
      const span = document.createElement("span");
      span.className = `pill state-${state}`;
      span.setAttribute("data-state", state);
      span.textContent = `${n} ${state}`;
      return span;
    }));
    box.title = `${run.tasks.size} tasks: too many to draw`;
  };
  update();
  return update;
}

export { describe };
