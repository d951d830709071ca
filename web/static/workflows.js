// The workflows page: the latest run of each workflow on the page, those in flight first, each with its
// DAG drawn and every task's state as the live events move it. A click on a task shows its details.

import { api } from "./api.js";
import { describe, drawDag } from "./dag.js";
import { h, ms, score, usd, when } from "./dom.js";
import { meter } from "./charts.js";
import { RUN_TERMINAL, loadRun, model } from "./model.js";

const SHOWN = 30; // cards on the page at most
const cards = new Map(); // run id -> { root, update, shape, picked }
let filter = "";

const inFlight = (run) => (RUN_TERMINAL.has(run.state) ? 0 : 1);

// The run's latest state from the API (after a gap, at its end, or when its tasks came in a blob).
const pending = new Map();
export function refreshRun(workflowId, delay = 250) {
  if (pending.has(workflowId)) return;
  pending.set(workflowId, setTimeout(async () => {
    try {
      const body = await api(`/api/workflows/${encodeURIComponent(workflowId)}`);
      loadRun(body);
      document.dispatchEvent(new CustomEvent("ymera:changed"));
    } catch {
      // a workflow the API does not know (yet): the live events still move it
    } finally {
      pending.delete(workflowId);
    }
  }, delay));
}

// The runs the page starts from: those in flight and the latest ones, each read whole.
export async function loadWorkflows() {
  const body = await api("/api/workflows?limit=50");
  const items = body.workflows || [];
  const flying = (item) => inFlight(item.latest || {});
  const wanted = [...items].sort((a, b) => flying(b) - flying(a)).slice(0, SHOWN);
  await Promise.all(wanted.map(async (summary) => {
    try {
      loadRun(await api(`/api/workflows/${encodeURIComponent(summary.workflow_id)}`));
    } catch {
      // gone since the list was read
    }
  }));
}

function progress(run) {
  const counts = {};
  for (const t of run.tasks.values()) counts[t.state] = (counts[t.state] || 0) + 1;
  return counts;
}

function header(run) {
  const counts = progress(run);
  const done = (counts.succeeded || 0) + (counts.failed || 0) + (counts.skipped || 0) + (counts.cancelled || 0);
  const parts = [
    h("span", { class: "wf-id" }, run.workflowId),
    h("span", { class: `pill state-${run.state}`, testid: "workflow-state", "data-state": run.state }, run.state),
    h("span", { class: "muted", testid: "workflow-progress" }, `${done}/${run.tasks.size} tasks ended`),
    h("span", { class: "muted" }, `submitted ${when(run.submittedAt)}`),
  ];
  if (run.quality != null) parts.push(h("span", { class: "muted" }, `quality ${score(run.quality)}`));
  if (run.cost || run.budget) {
    parts.push(h("span", { class: "spend" }, `${usd(run.cost)}${run.budget ? ` of ${usd(run.budget)}` : ""}`,
      run.budget ? meter(run.cost, run.budget) : null));
  }
  return parts;
}

function detail(run, id) {
  const t = run.tasks.get(id);
  if (!t) return null;
  return h("div", { class: "task-detail", testid: "task-detail", "data-task": id },
    h("strong", {}, id), " ", h("span", { class: `pill state-${t.state}` }, t.state),
    h("dl", {},
      h("dt", {}, "depends on"), h("dd", {}, t.deps.join(", ") || "nothing"),
      h("dt", {}, "attempts"), h("dd", {}, `${t.attempts} of ${t.maxAttempts}`),
      h("dt", {}, "states seen"), h("dd", {}, t.history.join(" → ")),
      t.model && [h("dt", {}, "model"), h("dd", {}, t.model)],
      t.durationMs != null && [h("dt", {}, "duration"), h("dd", {}, ms(t.durationMs))],
      t.cost != null && [h("dt", {}, "cost"), h("dd", {}, usd(t.cost))],
      t.quality != null && [h("dt", {}, "quality"), h("dd", {}, score(t.quality))],
      t.reason && [h("dt", {}, "reason"), h("dd", {}, t.reason)]),
    h("p", { class: "muted" }, describe(t)));
}

function build(run) {
  const root = h("article", { class: "workflow", testid: `workflow-${run.workflowId}` });
  const entry = { root, update: null, shape: -1, picked: null, filled: -1, head: h("header"), body: h("div", { class: "dag-box" }),
    info: h("div"), reason: h("p", { class: "reason" }) };
  root.append(entry.head, entry.reason, entry.body, entry.info);
  return entry;
}

function fill(entry, run) {
  entry.filled = run.changed;
  entry.root.setAttribute("data-state", run.state);
  entry.root.setAttribute("data-run", run.runId);
  entry.head.replaceChildren(...header(run));
  entry.reason.textContent = run.reason || "";
  entry.reason.hidden = !run.reason;
  if (entry.shape !== run.shape) {
    entry.update = drawDag(entry.body, run, (id) => {
      entry.picked = entry.picked === id ? null : id;
      fill(entry, run);
    });
    entry.shape = run.shape;
  } else {
    entry.update();
  }
  entry.info.replaceChildren(...(entry.picked ? [detail(run, entry.picked)] : []));
}

export function renderWorkflows(page) {
  const list = page.querySelector("[data-testid=workflow-list]");
  const runs = [...model.latest.values()].map((id) => model.runs.get(id)).filter(Boolean)
    .filter((r) => !filter || r.workflowId.includes(filter))
    .sort((a, b) => inFlight(b) - inFlight(a) || String(b.submittedAt).localeCompare(String(a.submittedAt)));
  const shown = runs.slice(0, SHOWN);
  const keep = new Set(shown.map((r) => r.runId));
  for (const [runId, entry] of cards) {
    if (!keep.has(runId)) {
      entry.root.remove();
      cards.delete(runId);
    }
  }
  let previous = null;
  for (const run of shown) {
    let entry = cards.get(run.runId);
    if (!entry) {
      entry = build(run);
      cards.set(run.runId, entry);
    }
    if (entry.filled !== run.changed) fill(entry, run);
    const at = previous ? previous.nextSibling : list.firstChild;
    if (at !== entry.root) list.insertBefore(entry.root, at);
    previous = entry.root;
  }
  const flying = runs.filter((r) => inFlight(r)).length;
  page.querySelector("[data-testid=workflow-count]").textContent =
    `${flying} in flight · ${runs.length} on this page${runs.length > SHOWN ? ` (the first ${SHOWN} shown)` : ""}`;
  if (!runs.length && !list.querySelector(".muted")) {
    list.replaceChildren(h("p", { class: "muted", testid: "workflow-list-empty" },
      "No workflow yet: `ymera submit FILE` and it appears here."));
  } else if (runs.length) {
    list.querySelector("[data-testid=workflow-list-empty]")?.remove();
  }
}

export function setupWorkflows(page, rerender) {
  page.querySelector("[data-testid=workflow-filter]").addEventListener("input", (e) => {
    filter = e.target.value.trim();
    rerender();
  });
}

