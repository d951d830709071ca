// The dashboard: one page per view (the URL's #hash), each loaded from the API when shown, the live feed
// folded into what the page shows as events arrive, the workflows page redrawn at most once a frame.

import { api } from "./api.js";
import { follow } from "./live.js";
import { showError } from "./dom.js";
import { RUN_TERMINAL, fold, model } from "./model.js";
import { badge, drawRate, loadAlerts, loadModels, loadOverview, loadQuality, loadSecurity, renderSecurityFeed }
  from "./views.js";
import { loadWorkflows, refreshRun, renderWorkflows, setupWorkflows } from "./workflows.js";

const VIEWS = ["overview", "workflows", "quality", "models", "alerts", "security"];
const RELOAD_MS = { overview: 5000, quality: 30000, models: 15000, alerts: 10000, security: 10000 };
const loaders = {
  overview: loadOverview,
  workflows: async (page) => {
    await loadWorkflows();
    renderWorkflows(page);
  },
  quality: loadQuality,
  models: loadModels,
  alerts: loadAlerts,
  security: async (page) => {
    await loadSecurity(page);
    renderSecurityFeed(page);
  },
};

let current = null;
let loading = null;
let reloadTimer = null;
let dirty = false;
let securityDirty = false;
let securitySeen = 0;

const page = (name) => document.getElementById(name);

async function load(name) {
  clearTimeout(reloadTimer);
  try {
    loading = loaders[name](page(name));
    await loading;
    showError(null);
    document.body.setAttribute("data-loaded", name);
  } catch (e) {
    showError(`${name}: ${e.message}`);
  } finally {
    loading = null;
  }
  if (RELOAD_MS[name] && current === name) reloadTimer = setTimeout(() => current === name && load(name), RELOAD_MS[name]);
}

function show() {
  const wanted = location.hash.slice(1);
  const name = VIEWS.includes(wanted) ? wanted : "overview";
  for (const v of VIEWS) {
    page(v).hidden = v !== name;
    const link = document.querySelector(`[data-testid=nav-${v}]`);
    if (v === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  current = name;
  if (name === "security") {
    securitySeen = model.security.length;
    badge("security-badge", 0);
  }
  return load(name);
}

function render() {
  dirty = false;
  if (current === "workflows") renderWorkflows(page("workflows"));
  if (securityDirty && current === "security") renderSecurityFeed(page("security"));
  securityDirty = false;
}

function changed() {
  if (dirty) return;
  dirty = true;
  requestAnimationFrame(render);
}

// A reload of one view at most every `wait` ms however many events ask for it.
const soon = new Map();
function reloadSoon(name, wait = 1000) {
  if (current !== name || soon.has(name)) return;
  soon.set(name, setTimeout(() => {
    soon.delete(name);
    if (current === name && !loading) load(name);
  }, wait));
}

function onEvent(seq, event) {
  const run = fold(seq, event);
  if (run) {
    if (run.needsReload || RUN_TERMINAL.has(run.state)) {
      run.needsReload = false;
      if (current === "workflows") refreshRun(run.workflowId, 500);
    }
    changed();
  } else if (current === "workflows" && event.workflow_id && event.workflow_id !== "_"
             && event.type.startsWith("Task")) {
    refreshRun(event.workflow_id, 500); // a run that started before the page opened
  }
  if (event.type === "AlertRaised" || event.type === "AlertResolved") {
    reloadSoon("alerts");
    reloadSoon("overview");
  }
  if (["InputFlagged", "EdgeFlagged", "OutputFlagged", "ToolRefused", "MessageRejected", "WorkflowRefused",
    "CancelRefused"].includes(event.type)) {
    if (current === "security") {
      securityDirty = true;
      changed();
      reloadSoon("security", 1500);
      securitySeen = model.security.length;
    } else {
      badge("security-badge", model.security.length - securitySeen);
    }
  }
}

function onGap() {
  // Events were missed (this client lagged, or the connection dropped): read the view again.
  if (current) load(current);
}

function onStatus(state) {
  const box = document.querySelector("[data-testid=live-status]");
  box.setAttribute("data-state", state);
  box.textContent = state;
}

async function boot() {
  setupWorkflows(page("workflows"), changed);
  page("quality").querySelector("[data-testid=quality-hours]").addEventListener("change", () => load("quality"));
  window.addEventListener("hashchange", show);
  document.addEventListener("ymera:changed", changed);
  window.ymeraPage = { model, opened: Date.now() };
  try {
    await api("/api/alerts"); // asks for a token first if the API wants one, so the feed opens with it
  } catch {
    // the page says what is wrong once it loads
  }
  // The feed opens before the page reads the API: an event in between is folded again into what it reads.
  follow({ onEvent, onGap, onStatus });
  await show();
  setInterval(() => current === "overview" && drawRate(page("overview")), 1000);
}

boot();
