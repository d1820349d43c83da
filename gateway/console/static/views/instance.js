import { api, ApiError, seg } from "../api.js";
import { action, announce, badge, copyable, copyButton, describe, field, form, h, refresh, table, when } from "../dom.js";
import { follow } from "../live.js";
import { chatsPanel } from "./chats.js";
import { LANES, lanesPanel, REASONS } from "./lanes.js";
import { webhookPanel } from "./webhooks.js";

const FEED_KEPT = 30; // live events listed

function section(id, title, ...content) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), ...content);
}

function wideSection(id, title, ...content) {
  const node = section(id, title, ...content);
  node.classList.add("wide");
  return node;
}

// The QR code while the instance is not linked. WhatsApp's codes last 20-60 s: a new one is
// fetched whenever the shown one has expired, so the picture refreshes itself (`update` answers
// in how many ms that is, for the view's follower).
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
      return null;
    }
    if (loading || Date.now() < expiresAt) return Math.max(expiresAt - Date.now(), 1000);
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
    return Math.max(expiresAt - Date.now(), 1000);
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
    { class: "facts", "aria-label": "Connection" },
    row("State", badge(s.state)),
    row("Phone", s.phoneNumber ? copyable(s.phoneNumber, "phone number") : "—"),
    row("Connected", when(s.connectedAt)),
    row("Waiting", String(s.messagesQueuedCount)),
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
    copyButton(m.id, `message id ${m.id}`),
  ]);
}

function waitingText(waiting) {
  const why = `waits: ${REASONS[waiting.reason] || waiting.reason}`;
  return waiting.until ? `${why}, until ${when(waiting.until)}` : why;
}

// The last events of the socket, newest first: inbound messages, receipts, connections, ...
function feedItem(event) {
  const d = event.data || {};
  const who = d.from || d.fromLid || d.to || "";
  const what = d.text || d.caption || d.emoji || d.reason || d.messageType || "";
  return h(
    "li",
    {},
    h("time", {}, new Date(event.timestamp).toLocaleTimeString()),
    " ",
    h("strong", {}, event.event),
    who ? ` ${who}` : "",
    what ? `: ${what}` : "",
  );
}

export function instanceView(main, { me, arg: name, signal }) {
  const path = `/instance/${seg(name)}`;
  const status = h("div", {}, h("p", {}, "Loading…"));
  const problem = h("p", { class: "result error", role: "alert" });
  const messages = h("div");
  const feed = h("ol", { class: "feed", "aria-label": "Live events, newest first" });
  const link = linkPanel(path);
  const again = () => follower.reload();
  const chats = chatsPanel(name, again);
  const lanes = lanesPanel(name, me, again);
  const webhook = webhookPanel(path, again);

  async function loadStatus() {
    const s = await api("GET", `${path}/status`);
    refresh(status, JSON.stringify(s), () => statusList(s));
    link.setOpen(s.state === "open");
    return link.update(s.state);
  }
  async function loadMessages() {
    const out = await api("GET", `${path}/messages?limit=20`);
    refresh(messages, JSON.stringify(out), () =>
      table(
        "Recent messages, newest first",
        ["Queued", "To", "Lane", "Type", "Status", "Text", "Error or wait", "Id"],
        messageRows(out.messages),
        "No message yet.",
      ),
    );
    return null;
  }
  async function load() {
    const hints = await Promise.all([loadStatus(), loadMessages(), chats.load(), lanes.load(), webhook.load()]);
    problem.textContent = "";
    const due = hints.filter((hint) => hint !== null && hint !== undefined);
    return due.length ? Math.min(...due) : null;
  }
  const remove = action("Delete this instance", async () => {
    if (!confirm(`Log ${name} out of WhatsApp and delete it?`)) return "Not deleted.";
    await api("DELETE", path);
    location.hash = "#/";
    return `${name} deleted.`;
  }, { class: "danger" });

  main.replaceChildren(
    h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Instances"), " / "),
    h("div", { class: "title" }, h("h1", {}, name), copyButton(name, "instance name")),
    h("div", { class: "grid" },
      section("conn-h", "Connection", status, problem, link.node),
      section("send-h", "Send a test message", sendForm(name, again)),
      wideSection("chats-h", "Conversations", chats.node),
      section("lanes-h", "Lanes", lanes.node),
      section("feed-h", "Live events", feed),
      wideSection("hooks-h", "Webhook", webhook.node),
      wideSection("msgs-h", "Recent messages", messages),
      section("settings-h", "Settings", settingsForm(path)),
      section("danger-h", "Danger zone", remove),
    ),
  );
  const follower = follow(signal, {
    instance: name,
    load,
    onEvent: (event) => {
      feed.prepend(feedItem(event));
      while (feed.children.length > FEED_KEPT) feed.lastChild.remove();
    },
    onError: (error) => {
      problem.textContent = describe(error);
    },
  });
}
