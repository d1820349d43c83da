import { api, ApiError, seg } from "../api.js";
import { announce, badge, describe, every, field, form, h, refresh, table, when } from "../dom.js";

const LANES = ["urgent", "normal", "bulk"];

function section(id, title, ...content) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...content);
}

function wideSection(id, title, ...content) {
  const node = section(id, title, ...content);
  node.classList.add("wide");
  return node;
}

function button(text, onclick, extra = {}) {
  return h("button", { type: "button", onclick, ...extra }, text);
}

// The QR code while the instance is not linked. WhatsApp's codes last 20-60 s: a new one is
// fetched whenever the shown one has expired, so the picture refreshes itself.
function linkPanel(path) {
  const img = h("img", { class: "qr", alt: "WhatsApp QR code: scan it in WhatsApp, Linked devices", hidden: true });
  const note = h("p", { class: "hint" });
  const problem = h("p", { class: "result error", role: "alert" });
  let expiresAt = 0;
  let loading = false;

  async function update(state) {
    if (state === "open") {
      img.hidden = true;
      note.textContent = "Linked: no QR code needed.";
      return;
    }
    if (loading || Date.now() < expiresAt) return;
    loading = true;
    try {
      const qr = await api("GET", `${path}/qr`);
      img.src = qr.qrcode;
      img.hidden = false;
      expiresAt = Date.parse(qr.expiresAt);
      note.textContent = `Scan with WhatsApp. A new code replaces this one at ${new Date(expiresAt).toLocaleTimeString()}.`;
      problem.textContent = "";
    } catch (error) {
      if (!(error instanceof ApiError && error.code === "invalid_state")) problem.textContent = describe(error);
      expiresAt = Date.now() + 5000;
    } finally {
      loading = false;
    }
  }

  const phone = h("input", { name: "phoneNumber", inputmode: "numeric", autocomplete: "tel", required: true });
  const pairing = form(
    "Link by pairing code",
    [field("Phone number", phone, "International digits only, no + or spaces: 5491112345678")],
    "Get a pairing code",
    async () => {
      const out = await api("POST", `${path}/pairing-code/request`, { phoneNumber: phone.value.trim() });
      return h("span", {}, "Enter this code in WhatsApp: ", h("strong", { class: "code" }, out.pairingCode));
    },
  );
  const node = h("div", { class: "link" }, h("figure", {}, img, h("figcaption", {}, note)), problem, pairing);
  return { node, update, setOpen: (open) => (pairing.hidden = open) };
}

function statusList(s) {
  const row = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  return h(
    "dl",
    { class: "facts" },
    row("State", badge(s.state)),
    row("Phone", s.phoneNumber || "—"),
    row("Connected", when(s.connectedAt)),
    row("Webhook", s.webhookUrl),
    // Plain text, not a badge: the connection state stays the list's one badge.
    row("Webhook state", `${s.webhook.state}, ${s.webhook.pending} pending`),
  );
}

function sendForm(name, onSent) {
  const to = h("input", { name: "to", inputmode: "numeric", required: true });
  const text = h("textarea", { name: "text", rows: "3", required: true });
  const lane = h("select", { name: "lane" }, LANES.map((l) => h("option", { value: l, selected: l === "normal" }, l)));
  return form(
    "Send a test message",
    [field("To", to, "International digits only: 5491112345678"), field("Text", text), field("Lane", lane)],
    "Send",
    async () => {
      const queued = await api("POST", "/message/text", { instanceName: name, to: to.value.trim(), text: text.value, lane: lane.value });
      onSent();
      return `Queued as ${queued.id}.`;
    },
  );
}

// The per-number switches (API.md, "Per-instance settings"), each with what it does.
const SWITCHES = [
  ["rejectCalls", "Reject calls", "Incoming calls are declined (call.rejected); the message below, if any, goes to the caller"],
  ["alwaysOnline", "Always online", "The number shows as online while it is connected"],
  ["autoRead", "Read on arrival", "Messages received are marked read (blue ticks) at once"],
  ["ignoreGroups", "Ignore groups", "No message events from group chats"],
  ["syncHistory", "Keep past chats", "WhatsApp's history sync is stored when the number links"],
];

// Read once, saved whole: the answer (the proxy's password as ***) is shown again, and a proxy URL
// sent back with *** keeps the stored password.
function settingsForm(path) {
  const deliverability = h(
    "select",
    { name: "deliverability" },
    h("option", { value: "standard" }, "Standard"),
    h("option", { value: "cautious" }, "Cautious"),
  );
  const switches = Object.fromEntries(SWITCHES.map(([key]) => [key, h("input", { type: "checkbox", name: key })]));
  const message = h("input", { name: "rejectCallMessage", maxlength: "1000" });
  const proxy = h("input", { name: "proxyUrl", placeholder: "socks5://user:password@host:1080" });
  const show = (s) => {
    deliverability.value = s.deliverability;
    for (const [key, box] of Object.entries(switches)) box.checked = s[key];
    message.value = s.rejectCallMessage || "";
    proxy.value = s.proxyUrl || "";
  };
  const node = form(
    "Settings",
    [
      field("Deliverability", deliverability, "Cautious adds the warm-up, first-contact limits and per-person spacing"),
      ...SWITCHES.map(([key, label, hint]) => field(label, switches[key], hint)),
      field("Message for a rejected caller", message, "Sent through the urgent lane; empty: none"),
      field("Proxy", proxy, "socks5:// or http(s):// for this number's connection; empty: the gateway's. Changing it reconnects the number"),
    ],
    "Save settings",
    async () => {
      const body = {
        deliverability: deliverability.value,
        rejectCallMessage: message.value.trim() || null,
        proxyUrl: proxy.value.trim() || null,
      };
      for (const [key, box] of Object.entries(switches)) body[key] = box.checked;
      show(await api("PATCH", `${path}/settings`, body));
      return "Settings saved.";
    },
  );
  api("GET", `${path}/settings`).then(show, (error) => announce(describe(error)));
  return node;
}

function messageRows(messages) {
  return messages.map((m) => [
    when(m.createdAt),
    m.to,
    m.lane,
    m.type,
    badge(m.status),
    m.text || m.caption || "",
    m.error || (m.waiting ? waitingText(m.waiting) : ""),
  ]);
}

// Why a pending message waits (API.md, "Every waiting message says why").
const REASONS = {
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

function waitingText(waiting) {
  const why = `waits: ${REASONS[waiting.reason] || waiting.reason}`;
  return waiting.until ? `${why}, until ${when(waiting.until)}` : why;
}

function heldText(held) {
  const parts = Object.entries(held || {}).map(([reason, count]) => `${REASONS[reason] || reason} (${count})`);
  return parts.length ? `Held: ${parts.join("; ")}.` : "";
}

function deliveryRows(deliveries, path, reload) {
  return deliveries.map((d) => {
    const last = d.attempts[d.attempts.length - 1];
    const answer = last ? (last.statusCode ? `HTTP ${last.statusCode}` : last.error || "no answer") : "—";
    const settled = d.status === "delivered" || d.status === "dead";
    const replay = async () => {
      try {
        await api("POST", `${path}/webhooks/deliveries/${seg(d.id)}/replay`);
        announce(`Delivery ${d.id} queued again.`);
        reload();
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
      settled ? button("Replay", replay, { "aria-label": `Replay ${d.event} delivery ${d.id}` }) : "",
    ];
  });
}

export function instanceView(main, { me, arg: name, signal }) {
  const path = `/instance/${seg(name)}`;
  const status = h("div", {}, h("p", {}, "Loading…"));
  const problem = h("p", { class: "result error", role: "alert" });
  const lanes = h("div");
  const messages = h("div");
  const deliveries = h("div");
  const link = linkPanel(path);

  async function poll() {
    const [s, queue] = await Promise.all([api("GET", `${path}/status`), api("GET", `${path}/queue`)]);
    problem.textContent = "";
    refresh(status, JSON.stringify(s), () => statusList(s));
    link.setOpen(s.state === "open");
    await link.update(s.state);
    refresh(lanes, JSON.stringify(queue), () =>
      h(
        "div",
        {},
        table("Messages waiting per lane", ["Lane", "Waiting"], LANES.map((l) => [l, String(queue[l])]), ""),
        h("p", { class: "held" }, heldText(queue.held)),
      ),
    );
  }
  async function loadMessages() {
    const out = await api("GET", `${path}/messages?limit=20`);
    refresh(messages, JSON.stringify(out), () =>
      table("Recent messages, newest first", ["Queued", "To", "Lane", "Type", "Status", "Text", "Error or wait"], messageRows(out.messages), "No message yet."),
    );
  }
  async function loadDeliveries() {
    const out = await api("GET", `${path}/webhooks/deliveries?limit=10`);
    refresh(deliveries, JSON.stringify(out), () =>
      table("Webhook deliveries, newest first", ["Created", "Event", "Status", "Tries", "Last answer", "Action"], deliveryRows(out.deliveries, path, loadDeliveries), "No delivery yet."),
    );
  }
  const act = (text, run, extra) =>
    button(text, async () => {
      try {
        announce(await run());
      } catch (error) {
        announce(describe(error));
      }
    }, extra);

  const testEvent = act("Send a test event", async () => {
    const out = await api("POST", `${path}/webhooks/test`);
    await loadDeliveries();
    return `Test event ${out.deliveryId} queued.`;
  });
  const flush = me.admin
    ? act("Flush the queue", async () => {
        if (!confirm(`Cancel every message waiting for ${name}?`)) return "Nothing flushed.";
        const out = await api("DELETE", `/admin/queue/${seg(name)}`);
        await loadMessages();
        return `${out.flushed} waiting messages cancelled.`;
      }, { class: "danger" })
    : null;
  const remove = act("Delete this instance", async () => {
    if (!confirm(`Log ${name} out of WhatsApp and delete it?`)) return "Not deleted.";
    await api("DELETE", path);
    location.hash = "#/";
    return `${name} deleted.`;
  }, { class: "danger" });

  main.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Instances"), " / "),
    h("h1", {}, name),
    h("div", { class: "grid" },
      section("conn-h", "Connection", status, problem, link.node),
      section("send-h", "Send a test message", sendForm(name, loadMessages)),
      section("lanes-h", "Lanes", lanes, flush),
      section("settings-h", "Settings", settingsForm(path)),
      section("danger-h", "Danger zone", remove),
      wideSection("msgs-h", "Recent messages", messages),
      wideSection("hooks-h", "Webhook deliveries", deliveries, testEvent),
    ),
  );
  const onError = (error) => {
    problem.textContent = describe(error);
  };
  every(2000, signal, poll, onError);
  every(2000, signal, loadMessages, onError);
  every(5000, signal, loadDeliveries, onError);
}
