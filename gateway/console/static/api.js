// Every call the console makes goes through `api`: the key from sessionStorage, JSON both ways,
// and the gateway's error shape ({ error: { code, message, issues }, requestId }) as an ApiError.

const KEY = "wa-gateway.apikey";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  signIn(key) {
    sessionStorage.setItem(KEY, key);
  },
  signOut() {
    sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `the gateway answered ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.issues = error.issues || [];
    this.requestId = body && body.requestId;
  }

  // One line a person can act on: the message, every issue with where it is, the request id.
  describe() {
    const issues = this.issues.map((issue) => `${issue.path.join(".") || "body"}: ${issue.message}`);
    const id = this.requestId ? ` (request ${this.requestId})` : "";
    return [this.message, ...issues].join("; ") + id;
  }
}

export async function api(method, path, body) {
  const headers = { apikey: session.key || "" };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A path segment built from a name or an id.
export const seg = encodeURIComponent;
