// The pages other than workflows: overview (GET /dashboard), quality (GET /quality/metrics), models and
// keys (GET /api/models, /api/keys), alerts (GET /api/alerts) and security (GET /security/events plus
// the security events of the live feed).

import { api } from "./api.js";
import { COLOURS, barChart, lineChart, meter } from "./charts.js";
import { card, h, ms, num, pct, score, table, usd, when } from "./dom.js";
import { model, rate } from "./model.js";

const SCORES = ["accuracy", "completeness", "consistency", "efficiency", "maintainability", "overall"];
const RATE_BARS = 60; // the rate chart: 60 bars of 5 s

function alertRows(alerts, testid) {
  return table(alerts, [
    ["severity", (a) => h("span", { class: `pill sev-${a.severity}` }, a.severity)],
    ["alert", (a) => a.alert],
    ["subject", (a) => a.subject || "–"],
    ["message", (a) => a.message],
    ["raised", (a) => when(a.ts)],
    ["resolved", (a) => (a.resolved ? when(a.resolved) : "open")],
  ], { testid, rowTestid: (a) => ({ testid: "alert", "data-alert": a.alert, "data-severity": a.severity }),
    empty: "no alerts" });
}

// ---- overview ---------------------------------------------------------------------------------------

export async function loadOverview(page) {
  const d = await api("/dashboard");
  const wf = d.workflows || {};
  const tasks = d.tasks || {};
  const cost = d.cost || {};
  const quality = d.quality || {};
  const status = d.system_status || {};
  const live = rate(10);
  const lastWindow = tasks.window || {};
  page.querySelector("[data-testid=overview-cards]").replaceChildren(
    card("stat-status", "system", status.status || "–", `as of ${when(status.as_of)}`, `status-${status.status}`),
    card("stat-running", "workflows running", num(wf.running), `${num(wf.active)} active`),
    card("stat-completed", "completed", num(wf.completed), `${num(wf.failed)} failed`),
    card("stat-tasks", "tasks succeeded", num(tasks.succeeded),
      `${num(tasks.failed)} failed · ${num(tasks.timed_out)} timed out · ${num(tasks.retried)} retried`),
    card("stat-rate", "tasks / s", num(live, 1), `latency p50 ${ms(tasks.latency_ms?.p50)}, p95 ${ms(tasks.latency_ms?.p95)}`),
    card("stat-quality", "quality", score(quality.mean_overall),
      `recent ${score(quality.recent_mean)} · threshold ${score(quality.threshold)}`),
    card("stat-cost", "spent today", usd(cost.today_usd),
      cost.daily_budget_usd ? `of ${usd(cost.daily_budget_usd)} a day` : `total ${usd(cost.total_usd)}`),
    card("stat-alerts", "open alerts", num(status.open_alerts), null, status.open_alerts ? "warn" : null),
  );
  page.querySelector("[data-testid=overview-cards]").setAttribute("data-window-attempts", lastWindow.attempts ?? "");
  const budgets = [h("div", { class: "budget", testid: "budget-daily" },
    h("span", {}, "today"), meter(cost.today_usd || 0, cost.daily_budget_usd),
    h("span", {}, cost.daily_budget_usd ? `${usd(cost.today_usd)} of ${usd(cost.daily_budget_usd)}`
      : `${usd(cost.today_usd)} (no daily budget: YMERA_DAILY_BUDGET_USD)`))];
  for (const run of model.runs.values()) {
    if (!run.budget) continue;
    budgets.push(h("div", { class: "budget", testid: `budget-${run.workflowId}` }, h("span", {}, run.workflowId),
      meter(run.cost, run.budget), h("span", {}, `${usd(run.cost)} of ${usd(run.budget)}`)));
  }
  const hours = (cost.per_hour || []).slice(-24);
  if (hours.some((x) => x.cost_usd)) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("data-testid", "cost-chart");
    svg.setAttribute("viewBox", "0 0 600 120");
    svg.setAttribute("preserveAspectRatio", "none");
    barChart(svg, hours.map((x) => x.cost_usd), { label: usd });
    budgets.push(h("h3", {}, "spend per hour"), svg);
  }
  const byModel = Object.entries(cost.by_model || {}).sort((a, b) => b[1] - a[1]).slice(0, 8);
  if (byModel.length) {
    budgets.push(table(byModel, [["model", ([m]) => m], ["spent", ([, c]) => usd(c)]], { testid: "cost-by-model" }));
  }
  page.querySelector("[data-testid=budgets]").replaceChildren(...budgets);
  page.querySelector("[data-testid=overview-alerts]").replaceChildren(alertRows(d.alerts?.open || [], "open-alerts"));
  drawRate(page);
  return d;
}

export function drawRate(page) {
  const now = Math.floor(Date.now() / 1000);
  const bars = new Array(RATE_BARS).fill(0);
  for (const [second, n] of model.ended) {
    const i = RATE_BARS - 1 - Math.floor((now - second) / 5);
    if (i >= 0 && i < RATE_BARS) bars[i] += n / 5;
  }
  barChart(page.querySelector("[data-testid=rate-chart]"), bars, { label: (v) => `${v.toFixed(1)}/s` });
  const stat = page.querySelector("[data-testid=stat-rate] .value");
  if (stat) stat.textContent = num(rate(10), 1);
}

// ---- quality ----------------------------------------------------------------------------------------

export async function loadQuality(page) {
  const hours = page.querySelector("[data-testid=quality-hours]").value;
  const q = await api(`/quality/metrics?hours=${encodeURIComponent(hours)}`);
  const perHour = q.per_hour || [];
  const series = SCORES.map((name, i) => ({ name, colour: COLOURS[i % COLOURS.length],
    points: perHour.map((p) => [new Date(p.hour).getTime(), p[name] ?? null]) }));
  lineChart(page.querySelector("[data-testid=quality-chart]"), series, { empty: "no task scored in this window" });
  page.querySelector("[data-testid=quality-legend]").replaceChildren(...series.map((s) =>
    h("span", { class: "key" }, h("i", { style: { background: s.colour } }), s.name)));
  const overall = q.overall || {};
  page.querySelector("[data-testid=quality-assessed]").textContent =
    `${num(overall.assessed)} tasks scored · overall ${score(overall.overall)}`;
  const tables = [];
  for (const [dimension, byKey] of Object.entries(q.by || {})) {
    const rows = Object.entries(byKey);
    if (!rows.length) continue;
    tables.push(h("h3", {}, dimension.replace("_", " ")), table(rows, [
      [dimension, ([k]) => k], ["scored", ([, v]) => num(v.assessed)],
      ...SCORES.map((s) => [s, ([, v]) => score(v[s])]),
    ], { testid: `quality-by-${dimension}` }));
  }
  if (q.alerts?.length) {
    tables.push(h("h3", {}, "quality alerts"), table(q.alerts, [["when", (a) => when(a.ts)], ["alert", (a) => a.alert],
      ["state", (a) => a.state], ["message", (a) => a.message]], { testid: "quality-alerts" }));
  }
  page.querySelector("[data-testid=quality-by]").replaceChildren(
    ...(tables.length ? tables : [h("p", { class: "muted" }, "no task scored in this window")]));
}

// ---- models and keys --------------------------------------------------------------------------------

export async function loadModels(page) {
  const m = await api("/api/models");
  page.querySelector("[data-testid=models-table]").replaceChildren(table(m.models || [], [
    ["model", (r) => r.model], ["configured", (r) => (r.configured ? "yes" : "no")], ["calls", (r) => num(r.calls)],
    ["failures", (r) => `${num(r.failures)} (${pct(r.failure_rate)})`], ["latency", (r) => ms(r.latency_ms)],
    ["cost", (r) => usd(r.cost_usd)], ["quality", (r) => score(r.quality)], ["rating", (r) => score(r.rating)],
  ], { testid: "models", rowTestid: (r) => ({ testid: "model", "data-model": r.model }),
    empty: "no model configured or called" }));
  const keys = page.querySelector("[data-testid=keys-table]");
  try {
    const k = await api("/api/keys");
    const rows = [...Object.entries(k.providers || {}).flatMap(([provider, ks]) => ks.map((x) => ({ provider, ...x }))),
      ...(k.unconfigured || []).map((x) => ({ provider: "(not configured here)", ...x }))];
    keys.replaceChildren(table(rows, [
      ["provider", (r) => r.provider], ["key", (r) => r.key],
      ["health", (r) => h("span", { class: `pill key-${r.state}` }, r.state)], ["calls", (r) => num(r.calls)],
      ["failures", (r) => num(r.failures)], ["last outcome", (r) => r.last_outcome || "–"],
      ["last call", (r) => when(r.last_call)],
    ], { testid: "keys", rowTestid: (r) => ({ testid: "key", "data-key": r.key, "data-state": r.state }),
      empty: "no provider key configured" }));
  } catch (e) {
    keys.replaceChildren(h("p", { class: "muted", testid: "keys-refused" },
      e.status === 403 ? "Key health needs an admin token." : `Keys: ${e.message}`));
  }
}

// ---- alerts -----------------------------------------------------------------------------------------

export async function loadAlerts(page) {
  const a = await api("/api/alerts");
  const open = a.open || [];
  page.querySelector("[data-testid=alerts-open]").replaceChildren(alertRows(open, "alerts-open-table"));
  page.querySelector("[data-testid=alerts-recent]").replaceChildren(alertRows(a.recent || a.alerts || [],
    "alerts-recent-table"));
  badge("alerts-badge", open.length);
}

export function badge(testid, n) {
  const b = document.querySelector(`[data-testid=${testid}]`);
  b.hidden = !n;
  b.textContent = n ? String(n) : "";
}

// ---- security ---------------------------------------------------------------------------------------

export async function loadSecurity(page) {
  const s = await api("/security/events?hours=24");
  const f = s.findings || {};
  page.querySelector("[data-testid=security-cards]").replaceChildren(
    card("sec-findings", "findings", num(f.total), Object.entries(f.by_severity || {}).map(([k, v]) => `${v} ${k}`)
      .join(", ") || null, f.total ? "warn" : null),
    card("sec-inputs", "submissions flagged", num(s.inputs?.flagged_submissions), `${num(s.inputs?.refused)} refused`),
    card("sec-outputs", "outputs flagged", num(s.outputs?.flagged_attempts), `${num(s.outputs?.redacted)} redacted`),
    card("sec-tools", "tool calls refused", num(s.tools?.refused), `${num(s.tools?.limit)} stopped at a limit`),
    card("sec-rejected", "messages rejected", num(s.rejected_messages?.total), `${num(s.rejected_messages?.forged)} forged`),
    card("sec-checkpoints", "signed checkpoints", num(s.checkpoints?.count), `latest seq ${num(s.checkpoints?.latest_seq)}`),
  );
  page.querySelector("[data-testid=security-findings]").replaceChildren(table(s.recent || [], [
    ["when", (r) => when(r.ts)], ["workflow", (r) => r.workflow_id], ["task", (r) => r.task_id || "–"],
    ["stage", (r) => r.stage], ["type", (r) => r.type],
    ["severity", (r) => h("span", { class: `pill sev-${r.severity}` }, r.severity)],
    ["field", (r) => r.field || "–"], ["reason", (r) => r.reason],
  ], { testid: "security-findings-table",
    rowTestid: (r) => ({ testid: "security-finding", "data-workflow": r.workflow_id, "data-type": r.type }),
    empty: "no finding in the last 24 hours" }));
}

function securityLine({ seq, event: e }) {
  const what = {
    InputFlagged: () => `${e.refused ? "refused" : "flagged"} a submission: ${findings(e)}`,
    EdgeFlagged: () => `untrusted input to task ${e.task_id}: ${findings(e)}`,
    OutputFlagged: () => `output of task ${e.task_id}: ${findings(e)}${e.redacted ? " (redacted)" : ""}`,
    ToolRefused: () => `${e.tool} refused for task ${e.task_id}: ${e.reason}`,
    MessageRejected: () => `message rejected (${e.kind}): ${e.reason}`,
    WorkflowRefused: () => `workflow refused: ${e.reason}`,
    CancelRefused: () => `cancel refused: ${e.reason || ""}`,
  }[e.type];
  return h("div", { class: "feed-line", testid: "security-event", "data-type": e.type, "data-workflow": e.workflow_id,
    "data-seq": seq },
  h("span", { class: "muted" }, when(e.ts)), " ", h("strong", {}, e.workflow_id), " ", h("code", {}, e.type), " ",
  what ? what() : "");
}

function findings(e) {
  return (e.findings || []).map((f) => `${f.type} (${f.severity})${f.field ? ` in ${f.field}` : ""}`).join(", ");
}

export function renderSecurityFeed(page) {
  const box = page.querySelector("[data-testid=security-live]");
  if (!model.security.length) return;
  box.replaceChildren(...model.security.slice(0, 50).map(securityLine));
}
