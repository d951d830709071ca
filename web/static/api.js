// Requests to the API: the token (asked for once when the API answers 401, kept in localStorage,
// sent as `Authorization: Bearer`), JSON bodies, and the API's errors ({"error", "detail"}) as messages.

const TOKEN_KEY = "ymera.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return localStorage.getItem(TOKEN_KEY);
}

let asking = null; // the one dialog open at a time, shared by every request that needs a token

function askToken(reason) {
  if (asking) return asking;
  const dialog = document.querySelector("[data-testid=token-dialog]");
  const input = dialog.querySelector("[data-testid=token-input]");
  dialog.querySelector("[data-testid=token-reason]").textContent = reason;
  input.value = "";
  asking = new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const value = input.value.trim();
      if (value) localStorage.setItem(TOKEN_KEY, value);
      asking = null;
      resolve(Boolean(value));
    }, { once: true });
  });
  dialog.showModal();
  input.focus();
  return asking;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says it
  }
  const detail = body && typeof body.detail === "string" ? body.detail : "";
  const error = (body && (body.error || body.detail)) || response.statusText || "error";
  const text = detail && detail !== error ? `${error}: ${detail}` : String(error);
  return new ApiError(response.status, text);
}

// GET `path` as JSON; on 401 asks for a token (once: a refused stored token is forgotten and asked again).
export async function api(path) {
  for (;;) {
    const headers = { Accept: "application/json" };
    const current = token();
    if (current) headers.Authorization = `Bearer ${current}`;
    const response = await fetch(path, { headers });
    if (response.status === 401) {
      if (current) localStorage.removeItem(TOKEN_KEY);
      const reason = current
        ? "The token was refused (revoked, or mistyped). Enter another."
        : "This Ymera asks for a token (`ymera tokens add NAME --role read` prints one).";
      if (!(await askToken(reason))) throw await errorOf(response);
      continue;
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }
}

// The live feed's URL: EventSource cannot send headers, so the token travels as ?token=.
export function liveUrl(params = {}) {
  const query = new URLSearchParams(params);
  const current = token();
  if (current) query.set("token", current);
  const text = query.toString();
  return text ? `/api/live?${text}` : "/api/live";
}
