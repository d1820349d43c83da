// The instance's lanes (GET .../queue): what waits per lane and why, today's quotas, the warm-up
// day and the bulk lane's pause after trouble. The admin may flush the queue, lift the pause and
// override the warm-up.
import { api, seg } from "../api.js";
import { action, field, form, h, refresh, table, when } from "../dom.js";

export const LANES = ["urgent", "normal", "bulk"];

// Why a pending message waits (API.md, "Every waiting message says why").
export const REASONS = {
  queued: "behind earlier messages",
  gap: "the lane's gap since the last send",
  hourly_quota: "the lane's hourly quota",
  daily_quota: "the lane's daily quota",
  warmup: "the warm-up's smaller quota",
  first_contact: "the daily limit of first contacts",
  spacing: "the spacing between two messages to one person",
  throttled: "bulk paused after trouble",
  not_connected: "the number is not connected",
  retry: "a retry after a failed attempt",
};

const PAUSES = {
  banned: "WhatsApp banned the number for a while",
  not_on_whatsapp: "too many recipients were not on WhatsApp",
  failure_rate: "too many sends failed",
};

function heldText(held) {
  const parts = Object.entries(held || {}).map(([reason, count]) => `${REASONS[reason] || reason} (${count})`);
  return parts.length ? `Held: ${parts.join("; ")}.` : "";
}

function warmupText(q) {
  if (q.warmup.override !== null) return `Overridden by the admin: ${Math.round(q.warmup.override * 100)} % of the lane quotas.`;
  if (!q.warmup.firstLinkedAt) return "Starts when the number first links.";
  const factor = q.quotas.normal.warmup;
  return `Day ${q.warmup.day} since ${when(q.warmup.firstLinkedAt)}: ${Math.round(factor * 100)} % of the lane quotas today.`;
}

function lanesView(q) {
  const rows = LANES.map((l) => {
    const quota = q.quotas[l];
    const first = quota.firstContactPerDay === null ? "no limit" : String(quota.firstContactPerDay);
    return [l, String(q[l]), String(quota.perHour), String(quota.perDay), first];
  });
  return h(
    "div",
    {},
    table("Messages waiting per lane", ["Lane", "Waiting", "Per hour", "Per day", "New contacts a day"], rows, ""),
    h("p", { class: "held" }, heldText(q.held)),
    h("p", { class: "warmup" }, h("strong", {}, "Warm-up: "), warmupText(q)),
    h(
      "p",
      { class: "throttle" },
      h("strong", {}, "Bulk lane: "),
      q.throttled ? `paused until ${when(q.throttled.until)}: ${PAUSES[q.throttled.reason] || q.throttled.reason}.` : "sending.",
    ),
  );
}

function adminControls(name, again) {
  const flush = action("Flush the queue", async () => {
    if (!confirm(`Cancel every message waiting for ${name}?`)) return "Nothing flushed.";
    const out = await api("DELETE", `/admin/queue/${seg(name)}`);
    return `${out.flushed} waiting messages cancelled.`;
  }, { class: "danger" }, again);
  const lift = action("Resume the bulk lane now", async () => {
    const out = await api("DELETE", `/admin/instances/${seg(name)}/throttle`);
    return `Bulk lane resumed (it was paused: ${PAUSES[out.reason] || out.reason}).`;
  }, {}, again);
  const factor = h("input", { name: "factor", type: "number", min: "1", max: "100", step: "1", inputmode: "numeric" });
  const warmup = form(
    "Warm-up override",
    [field("Share of the lane quotas (%)", factor, "1-100, whatever the warm-up day; empty: back to the schedule")],
    "Set the warm-up",
    async () => {
      const percent = factor.value.trim();
      const path = `/admin/instances/${seg(name)}/warmup`;
      if (!percent) await api("DELETE", path);
      else await api("PUT", path, { factor: Number(percent) / 100 });
      again();
      return percent ? `Warm-up set to ${percent} %.` : "Back to the warm-up schedule.";
    },
  );
  return h("div", { class: "admin-lanes" }, h("div", { class: "buttons" }, flush, lift), warmup);
}

export function lanesPanel(name, me, again) {
  const box = h("div", {}, h("p", {}, "Loading…"));
  async function load() {
    const q = await api("GET", `/instance/${seg(name)}/queue`);
    refresh(box, JSON.stringify(q), () => lanesView(q));
    // A paused lane resumes by the clock, with no event: look again then.
    return q.throttled ? Math.max(Date.parse(q.throttled.until) - Date.now() + 500, 1000) : null;
  }
  return { node: h("div", {}, box, me.admin ? adminControls(name, again) : null), load };
}
