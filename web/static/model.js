// What the page shows, folded from the API's answers and then from the live events: the runs of the
// workflows on screen (each task's state, as store/_runs.py folds it), the live rate of tasks ended,
// and the security events seen since the page opened.

export const RUN_TERMINAL = new Set(["completed", "failed", "cancelled", "invalid", "refused"]);
const TASK_FINAL = new Set(["succeeded", "failed", "skipped", "cancelled"]);
const IN_FLIGHT = new Set(["ready", "running"]);
const RUN_STATE_OF = {
  WorkflowSubmitted: "submitted", WorkflowAdmitted: "admitted", WorkflowRefused: "refused",
  WorkflowValidated: "validated", WorkflowInvalid: "invalid", TaskReady: "running", TaskStarted: "running",
  TaskSucceeded: "running", TaskFailed: "running", WorkflowCompleted: "completed", WorkflowFailed: "failed",
  WorkflowCancelled: "cancelled",
};
export const SECURITY_TYPES = new Set([
  "InputFlagged", "EdgeFlagged", "OutputFlagged", "ToolRefused", "MessageRejected", "WorkflowRefused",
  "CancelRefused",
]);
const MAX_RUNS = 60; // runs kept on the page; the oldest ended ones go first
const RECENT = 5000; // live events kept, to fold again into a run read from the API before them
const RATE_SECONDS = 300; // the tasks-per-second chart's span

let tick = 0; // counts changes: a run's `changed` says when it last changed

export const model = {
  runs: new Map(), // run id -> run
  latest: new Map(), // workflow id -> its latest run id
  ended: [], // [second, tasks ended in it], the last RATE_SECONDS seconds
  security: [], // security events since the page opened, newest first
  alertsChanged: 0,
  lastSeq: 0,
  recent: [], // [seq, event]: the last RECENT live events
};

function task(id, deps = [], maxAttempts = 3) {
  return { id, deps, state: "waiting", attempts: 0, maxAttempts, reason: null, history: ["waiting"],
    quality: null, model: null, cost: null, durationMs: null };
}

function setTask(t, state, reason) {
  if (reason !== undefined) t.reason = reason;
  if (t.state === state) return;
  t.state = state;
  if (t.history[t.history.length - 1] !== state) t.history.push(state);
}

function newRun(workflowId, runId, submittedAt) {
  return { workflowId, runId, submittedAt, state: "submitted", reason: null, tasks: new Map(), budget: null,
    cost: 0, quality: null, endedAt: null, shape: 0, changed: 0, needsReload: false };
}

function keep(run) {
  model.runs.set(run.runId, run);
  const latest = model.runs.get(model.latest.get(run.workflowId));
  if (!latest || latest.submittedAt <= run.submittedAt) model.latest.set(run.workflowId, run.runId);
  if (model.runs.size > MAX_RUNS) {
    const old = [...model.runs.values()].filter((r) => RUN_TERMINAL.has(r.state))
      .sort((a, b) => (a.endedAt || a.submittedAt).localeCompare(b.endedAt || b.submittedAt));
    for (const r of old.slice(0, model.runs.size - MAX_RUNS)) {
      model.runs.delete(r.runId);
      if (model.latest.get(r.workflowId) === r.runId) model.latest.delete(r.workflowId);
    }
  }
}

// A run as the API describes it (GET /api/workflows/{id}: its latest run, with tasks and DAG).
export function loadRun(body) {
  const src = body.latest || body.run || body;
  const runId = src.run_id;
  if (!runId) return null;
  const old = model.runs.get(runId);
  const run = newRun(src.workflow_id || body.workflow_id, runId, src.submitted_at || "");
  run.state = src.state || "submitted";
  run.reason = src.reason || null;
  run.endedAt = src.ended_at || null;
  run.quality = src.overall_quality ?? null;
  run.budget = src.budget_usd ?? old?.budget ?? null;
  const dag = src.dag || body.dag || {};
  const tasks = src.tasks || {};
  const ids = new Set([...Object.keys(dag), ...Object.keys(tasks)]);
  for (const id of ids) {
    const s = tasks[id] || {};
    const t = task(id, dag[id] || s.dependencies || [], s.max_attempts || 3);
    const before = old?.tasks.get(id);
    t.history = before ? [...before.history] : [];
    setTask(t, s.state || "waiting", s.reason ?? null);
    if (!t.history.length) t.history.push(t.state);
    Object.assign(t, { attempts: s.attempts || 0, quality: s.quality ?? null, model: s.model ?? null,
      cost: s.cost_usd ?? null, durationMs: s.duration_ms ?? null });
    run.tasks.set(id, t);
  }
  run.cost = [...run.tasks.values()].reduce((sum, t) => sum + (t.cost || 0), 0);
  run.shape = (old?.shape || 0) + 1;
  run.changed = ++tick;
  keep(run);
  // The answer is as of `as_of_seq`: the live events after it that reached the page first are folded again.
  const asOf = body.as_of_seq ?? 0;
  for (const [seq, event] of model.recent) {
    if (seq > asOf && (event.run_id === runId || (!event.run_id && event.workflow_id === run.workflowId))) {
      apply(event);
    }
  }
  return run;
}

function runOf(event) {
  if (event.type === "WorkflowSubmitted") return model.runs.get(event.id);
  return model.runs.get(event.run_id || model.latest.get(event.workflow_id));
}

function countEnded(event) {
  const second = Math.floor(Date.now() / 1000);
  const last = model.ended[model.ended.length - 1];
  if (last && last[0] === second) last[1] += 1;
  else model.ended.push([second, 1]);
  while (model.ended.length && model.ended[0][0] <= second - RATE_SECONDS) model.ended.shift();
  return event;
}

// Tasks ended per second over the last `seconds` (a live figure: since the page opened).
export function rate(seconds = 10) {
  const now = Math.floor(Date.now() / 1000);
  const n = model.ended.filter(([s]) => s > now - seconds).reduce((sum, [, c]) => sum + c, 0);
  return n / seconds;
}

// Fold one live event; returns the run it changed (or null).
export function fold(seq, event) {
  model.lastSeq = Math.max(model.lastSeq, seq || 0);
  model.recent.push([seq, event]);
  if (model.recent.length > RECENT + 500) model.recent.splice(0, model.recent.length - RECENT);
  if (event.type === "TaskSucceeded" || event.type === "TaskFailed") countEnded(event);
  if (SECURITY_TYPES.has(event.type)) {
    model.security.unshift({ seq, event });
    model.security.length = Math.min(model.security.length, 200);
  }
  if (event.type === "AlertRaised" || event.type === "AlertResolved") model.alertsChanged += 1;
  return apply(event);
}

// An event's change to the run it belongs to (as store/_runs.py folds it); the run, or null.
function apply(event) {
  if (event.type === "WorkflowSubmitted") {
    if (model.runs.has(event.id)) return null;
    const run = newRun(event.workflow_id, event.id, event.ts);
    run.budget = event.budget_usd ?? null;
    for (const spec of event.tasks || []) {
      run.tasks.set(spec.id, task(spec.id, spec.dependencies || [], spec.retry?.max_attempts || 3));
    }
    if (event.blobs && event.blobs.tasks) run.needsReload = true; // its tasks travelled as a blob
    run.shape = 1;
    run.changed = ++tick;
    keep(run);
    return run;
  }
  const run = runOf(event);
  if (!run) return null;
  run.changed = ++tick;
  if (RUN_TERMINAL.has(run.state)) {
    const t = run.tasks.get(event.task_id);
    if (event.type === "TaskAssessed" && t) t.quality = event.overall ?? t.quality;
    return run;
  }
  const state = RUN_STATE_OF[event.type];
  if (state) run.state = state;
  switch (event.type) {
    case "WorkflowRefused":
      run.reason = event.reason;
      run.endedAt = event.ts;
      break;
    case "WorkflowInvalid":
      run.reason = (event.problems || []).map((p) => p.message || JSON.stringify(p)).join("; ");
      run.endedAt = event.ts;
      break;
    case "WorkflowCompleted":
    case "WorkflowFailed":
      run.endedAt = event.ts;
      run.quality = event.overall_quality ?? null;
      if (event.type === "WorkflowFailed") run.reason = event.reason;
      for (const r of event.results || []) {
        let t = run.tasks.get(r.task_id);
        if (!t) {
          t = task(r.task_id);
          run.tasks.set(r.task_id, t);
          run.shape += 1;
        }
        setTask(t, r.status, r.status === "succeeded" ? null : r.error ?? null);
        Object.assign(t, { attempts: r.attempts ?? t.attempts, quality: r.quality ?? t.quality,
          model: r.model ?? t.model, cost: r.cost_usd ?? t.cost, durationMs: r.duration_ms ?? t.durationMs });
      }
      run.cost = [...run.tasks.values()].reduce((sum, t) => sum + (t.cost || 0), 0);
      break;
    case "WorkflowCancelled":
      run.endedAt = event.ts;
      run.reason = event.reason || "cancelled on request";
      for (const t of run.tasks.values()) {
        if (TASK_FINAL.has(t.state)) continue;
        setTask(t, t.attempts > 0 ? "cancelled" : "skipped", `the workflow was cancelled: ${run.reason}`);
      }
      break;
    default: {
      const t = run.tasks.get(event.task_id);
      if (t) foldTask(run, t, event);
    }
  }
  return run;
}

function foldTask(run, t, event) {
  if (event.type === "TaskAssessed") {
    t.quality = event.overall ?? t.quality;
    return;
  }
  if (event.type === "TaskRetryScheduled" && t.state === "succeeded") {
    setTask(t, "retrying", event.reason);
    return;
  }
  if (TASK_FINAL.has(t.state)) return;
  switch (event.type) {
    case "TaskReady":
      if (event.attempt > t.attempts) {
        t.attempts = event.attempt;
        setTask(t, "ready");
      }
      break;
    case "TaskStarted":
    case "TaskHeartbeat":
      if (event.attempt === t.attempts && t.state === "ready") setTask(t, "running");
      break;
    case "TaskSucceeded":
      if (event.attempt === t.attempts && IN_FLIGHT.has(t.state)) {
        setTask(t, "succeeded", null);
        Object.assign(t, { durationMs: event.duration_ms ?? null, model: event.model ?? null,
          cost: event.cost_usd ?? null });
        if (event.quality) t.quality = event.quality.overall ?? t.quality; // no model wrote it: scored in its attempt
        run.cost += event.cost_usd || 0;
      }
      break;
    case "TaskFailed":
    case "TaskTimedOut":
      if (event.attempt === t.attempts && IN_FLIGHT.has(t.state)) {
        const reason = event.type === "TaskFailed" ? event.error : event.reason;
        const retryable = event.type === "TaskFailed" ? event.retryable !== false : true;
        const final = !retryable || event.attempt >= t.maxAttempts;
        setTask(t, final ? "failed" : "retrying", final ? reason : null);
        if (event.type === "TaskFailed") run.cost += event.cost_usd || 0;
      }
      break;
    case "TaskRetryScheduled":
      setTask(t, "retrying");
      break;
    case "TaskSkipped":
      setTask(t, "skipped", event.reason);
      break;
    default:
  }
}

export function clearRuns() {
  model.runs.clear();
  model.latest.clear();
}
