// Small helpers: build elements, tables and cards, and format numbers, money and times.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "testid") node.setAttribute("data-testid", v);
    else if (k === "style") Object.assign(node.style, v); // properties, not an attribute: the CSP allows no inline style
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const num = (v, digits = 0) => (v == null ? "–" : Number(v).toLocaleString(undefined,
  { maximumFractionDigits: digits, minimumFractionDigits: digits }));
export const usd = (v) => (v == null ? "–" : `$${Number(v).toFixed(v && Math.abs(v) < 0.01 ? 6 : 2)}`);
export const pct = (v) => (v == null ? "–" : `${(v * 100).toFixed(1)}%`);
export const score = (v) => (v == null ? "–" : Number(v).toFixed(3));
export const ms = (v) => (v == null ? "–" : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

export function when(iso) {
  if (!iso) return "–";
  const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString();
}

// A table of `rows` (objects) with `columns`: [[header, row => cell]], or a note when there are none.
export function table(rows, columns, { testid = null, rowTestid = null, empty = "none" } = {}) {
  if (!rows.length) return h("p", { class: "muted", testid: testid && `${testid}-empty` }, empty);
  return h("table", { testid },
    h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", {}, name)))),
    h("tbody", {}, rows.map((row) => {
      const tr = h("tr", rowTestid ? rowTestid(row) : {}, columns.map(([, cell]) => h("td", {}, cell(row))));
      return tr;
    })));
}

export function card(testid, label, value, sub = null, state = null) {
  return h("div", { class: `card${state ? ` ${state}` : ""}`, testid, "data-value": typeof value === "string" ? value : null },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub && h("div", { class: "sub" }, sub));
}

export function showError(message) {
  const box = document.querySelector("[data-testid=error]");
  if (!message) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = message;
}
