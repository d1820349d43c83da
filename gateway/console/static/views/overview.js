// The admin's overview of the whole gateway: GET /admin/stats and GET /admin/workers. Read again
// after events (at most every 2 s: the admin's stream carries every tenant's), and every 30 s for
// the workers' heartbeats, which are no events.
import { api } from "../api.js";
import { badge, describe, h, refresh, table, when } from "../dom.js";
import { follow } from "../live.js";

const HEARTBEATS_MS = 30000;

function figures(title, counts) {
  const entries = Object.entries(counts);
  return h(
    "section",
    { class: "card figures", "aria-label": title },
    h("h2", {}, title),
    h(
      "dl",
      { class: "facts" },
      entries.length ? entries.flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, String(value))]) : h("dd", {}, "none"),
    ),
  );
}

function statsView(s) {
  return h(
    "div",
    { class: "grid stats" },
    figures("Instances by state", s.instances),
    figures("Messages waiting per lane", s.waiting),
    figures("Messages", s.messages),
    figures("Webhook deliveries", s.webhooks),
    figures("Workers", { alive: s.workersAlive }),
  );
}

function workerRows(workers) {
  return workers.map((w) => [
    w.workerId,
    badge(w.alive ? "alive" : "gone"),
    when(w.lastHeartbeat),
    [w.host, w.pid].filter((part) => part !== null).join(" pid ") || "—",
    w.capacity === null ? "—" : `${w.instances.length} / ${w.capacity}`,
    when(w.startedAt),
  ]);
}

export function overviewView(main, { signal }) {
  const stats = h("div", {}, h("p", {}, "Loading…"));
  const workers = h("div");
  const problem = h("p", { class: "result error", role: "alert" });
  main.replaceChildren(
    h("h1", {}, "Gateway overview"),
    stats,
    h("section", { class: "card", "aria-labelledby": "workers-h" }, h("h2", { id: "workers-h" }, "Worker processes"), workers, problem),
  );
  follow(signal, {
    gather: 2000,
    load: async () => {
      const [s, w] = await Promise.all([api("GET", "/admin/stats"), api("GET", "/admin/workers")]);
      problem.textContent = "";
      refresh(stats, JSON.stringify(s), () => statsView(s));
      refresh(workers, JSON.stringify(w), () =>
        table("Workers and their instances", ["Worker", "State", "Last heartbeat", "Host", "Instances / capacity", "Started"], workerRows(w), "No worker has started."),
      );
      return HEARTBEATS_MS;
    },
    onError: (error) => {
      problem.textContent = describe(error);
    },
  });
}
