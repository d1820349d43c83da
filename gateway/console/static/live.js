// Live updates: a view's `load` runs when the page opens, again whenever an event of the
// `/events` WebSocket arrives (a burst of events makes one load), and at the moment something
// in flight is due (`load` answers in how many ms, or null). Only while the socket cannot be
// opened does the view fall back to reading everything every few seconds, and the header says so.
import { session } from "./api.js";

const GATHER_MS = 250; // events within this time after a first one make one load (`gather` to change)
const FALLBACK_MS = 5000; // how often a view reads again while the socket is down
const RETRY_SOCKET_MS = 15000; // how often a failed socket is tried again meanwhile

function indicator(text, live) {
  const node = document.getElementById("live");
  if (!node) return;
  node.textContent = text;
  node.className = live ? "live on" : "live off";
}

// Runs `fn` one call at a time: a call asked for while one is on its way runs once after it.
function serialized(fn) {
  let running = null;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await fn();
      } while (again);
    })();
    try {
      await running;
    } finally {
      running = null;
    }
  };
  return run;
}

function socketUrl(instance, since) {
  const url = new URL("/events", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  // Browsers open WebSockets without headers: the key rides in the query (kept out of the logs).
  url.searchParams.set("apikey", session.key || "");
  if (instance) url.searchParams.set("instance", instance);
  if (since) url.searchParams.set("since", since);
  return url.href;
}

// Follows the caller's events (one instance's, with `instance`) until `signal` aborts.
// `onEvent(event)` sees each event; `onError(error)` each failed load. `gather` ms: a load at
// most that often however many events come (the admin's stream carries every tenant's).
export function follow(signal, { instance, load, onEvent, onError, gather: gap = GATHER_MS }) {
  let due = null; // the timer of the next in-flight check
  let gather = null;
  let fallback = null;
  let retry = null;
  let socket = null;
  let cursor = null;

  // A tab in the background reads nothing; it catches up when it is shown again.
  let stale = false;
  const onVisible = () => {
    if (!document.hidden && stale) reload();
  };
  document.addEventListener("visibilitychange", onVisible);

  const reload = serialized(async () => {
    if (signal.aborted) return;
    stale = document.hidden;
    if (stale) return;
    let next = null;
    try {
      next = await load();
    } catch (error) {
      if (onError) onError(error);
    }
    clearTimeout(due);
    if (next !== null && next !== undefined && !signal.aborted) due = setTimeout(reload, Math.max(next, 200));
  });

  const startFallback = (why) => {
    indicator(`Live updates unavailable (${why}): reading again every ${FALLBACK_MS / 1000} s`, false);
    if (!fallback) fallback = setInterval(reload, FALLBACK_MS);
    clearTimeout(retry);
    retry = setTimeout(connect, RETRY_SOCKET_MS);
  };

  function connect() {
    if (signal.aborted) return;
    let opened = false;
    socket = new WebSocket(socketUrl(instance, cursor));
    socket.addEventListener("open", () => {
      opened = true;
      clearInterval(fallback);
      fallback = null;
      indicator("Live", true);
      reload(); // whatever happened while the socket was away
    });
    socket.addEventListener("message", (message) => {
      const event = JSON.parse(message.data);
      cursor = event.cursor;
      if (onEvent) onEvent(event);
      if (gather === null) {
        gather = setTimeout(() => {
          gather = null;
          reload();
        }, gap);
      }
    });
    socket.addEventListener("close", (closed) => {
      if (signal.aborted) return;
      // A socket that was open reconnects at once from its cursor (a gateway restart says
      // goodbye this way); one that could not open means polling for now.
      if (opened && closed.code === 1001) setTimeout(connect, 1000);
      else startFallback(closed.reason || (opened ? "the connection closed" : "the connection failed"));
    });
  }

  signal.addEventListener("abort", () => {
    for (const timer of [due, gather, retry]) clearTimeout(timer);
    clearInterval(fallback);
    document.removeEventListener("visibilitychange", onVisible);
    if (socket) socket.close(1000);
  });
  reload();
  connect();
  return { reload };
}
