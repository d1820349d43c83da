// The instance's webhook: its state (ok, retrying, down, disabled) with what is held, its settings
// (URL, the events it gets, enabled), the recent deliveries with their tries, one replay or all
// the dead letters at once.
import { api, seg } from "../api.js";
import { action, announce, badge, copyButton, describe, field, form, h, refresh, table, when } from "../dom.js";

const SETTLED = ["delivered", "dead"];
const ALL = "*";

// The event names, as the API documents them (the enum of PATCH .../webhook's `events`).
let known = null;
async function eventNames() {
  if (!known) {
    const doc = await api("GET", "/openapi.json");
    const find = (node) => {
      if (!node || typeof node !== "object") return null;
      if (Array.isArray(node.enum)) return node.enum;
      for (const child of Object.values(node)) {
        const found = find(child);
        if (found) return found;
      }
      return null;
    };
    known = find(doc.components.schemas.WebhookUpdate.properties.events).filter((name) => name !== ALL);
  }
  return known;
}

function facts(hook) {
  const w = hook.webhook;
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  return h(
    "dl",
    { class: "facts", "aria-label": "Webhook state" },
    row("State", badge(w.state)),
    row("Since", when(w.since)),
    row("Pending", String(w.pending)),
    row("Oldest pending", when(w.oldestPendingAt)),
    row("Events", hook.events.includes(ALL) ? "all" : hook.events.join(", ")),
  );
}

function settingsForm(path, onSaved) {
  const url = h("input", { name: "webhookUrl", type: "url", required: true });
  const enabled = h("input", { type: "checkbox", name: "enabled" });
  const all = h("input", { type: "checkbox", name: "allEvents" });
  const boxes = new Map();
  const list = h("div", { class: "events" });
  const chooser = h("fieldset", {}, h("legend", {}, "Events delivered"), field("All events", all), list);
  // Unticking "All events" starts from none: the events wanted are then ticked one by one.
  all.addEventListener("change", () => {
    list.hidden = all.checked;
    for (const box of boxes.values()) box.checked = all.checked;
  });

  async function show(hook) {
    url.value = hook.webhookUrl;
    enabled.checked = hook.webhook.state !== "disabled";
    all.checked = hook.events.includes(ALL);
    list.hidden = all.checked;
    if (!boxes.size) {
      for (const name of await eventNames()) boxes.set(name, h("input", { type: "checkbox", name }));
      list.replaceChildren(...[...boxes].map(([name, box]) => field(name, box)));
    }
    for (const [name, box] of boxes) box.checked = all.checked || hook.events.includes(name);
  }

  const node = form(
    "Webhook settings",
    [
      field("Webhook URL", url, "Where the gateway posts this number's events"),
      field("Enabled", enabled, "Off: events are dead-lettered (kept for a replay). On again: a down or disabled webhook starts afresh"),
      chooser,
    ],
    "Save webhook",
    async () => {
      const events = all.checked ? [ALL] : [...boxes].filter(([, box]) => box.checked).map(([name]) => name);
      const body = { webhookUrl: url.value.trim(), enabled: enabled.checked, events };
      await show(await api("PATCH", `${path}/webhook`, body));
      onSaved();
      return "Webhook saved.";
    },
  );
  return { node, show };
}

function deliveryRows(deliveries, path, again) {
  return deliveries.map((d) => {
    const answer = d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : (d.attempts.at(-1) || {}).error || "—";
    const replay = async () => {
      try {
        await api("POST", `${path}/webhooks/deliveries/${seg(d.id)}/replay`);
        announce(`Delivery ${d.id} queued again.`);
        again();
      } catch (error) {
        announce(describe(error));
      }
    };
    return [
      when(d.createdAt),
      d.event,
      badge(d.status),
      String(d.tries),
      answer,
      h(
        "span",
        { class: "actions" },
        SETTLED.includes(d.status)
          ? h("button", { type: "button", class: "small", onclick: replay, "aria-label": `Replay ${d.event} delivery ${d.id}` }, "Replay")
          : null,
        copyButton(d.id, `delivery id ${d.id}`),
      ),
    ];
  });
}

// When to look again: at the soonest attempt due among the deliveries still on their way (an
// attempt is no event of its own), or never while everything has settled.
function nextCheck(deliveries) {
  const due = deliveries
    .filter((d) => !SETTLED.includes(d.status))
    .map((d) => (d.nextAttemptAt ? Date.parse(d.nextAttemptAt) : Date.now()));
  if (!due.length) return null;
  return Math.min(Math.max(Math.min(...due) - Date.now() + 300, 1000), 60000);
}

export function webhookPanel(path, again) {
  const state = h("div", {}, h("p", {}, "Loading…"));
  const deliveries = h("div");
  const settings = settingsForm(path, again);
  let shown = false;

  const act = (text, run) => action(text, run, {}, again);
  const replayAll = act("Replay every dead letter", async () => {
    const out = await api("POST", `${path}/webhooks/replay`, { status: "dead_lettered" });
    return `${out.replayed} dead-lettered deliveries queued again.`;
  });
  const test = act("Send a test event", async () => {
    const out = await api("POST", `${path}/webhooks/test`);
    return `Test event ${out.deliveryId} queued.`;
  });

  async function load() {
    const [hook, page] = await Promise.all([api("GET", `${path}/webhook`), api("GET", `${path}/webhooks/deliveries?limit=10`)]);
    refresh(state, JSON.stringify(hook), () => facts(hook));
    if (!shown) {
      shown = true; // the form is filled once, then after each save: a refresh never undoes an edit
      await settings.show(hook);
    }
    refresh(deliveries, JSON.stringify(page.deliveries), () =>
      table(
        "Webhook deliveries, newest first",
        ["Created", "Event", "Status", "Tries", "Last answer", "Action"],
        deliveryRows(page.deliveries, path, again),
        "No delivery yet.",
      ),
    );
    return nextCheck(page.deliveries);
  }

  const node = h(
    "div",
    { class: "webhook" },
    state,
    h("div", { class: "buttons" }, test, replayAll),
    deliveries,
    h("details", {}, h("summary", {}, "Webhook settings"), settings.node),
  );
  return { node, load };
}
