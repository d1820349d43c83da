// The instance's conversations (the conversation store: GET .../chats and .../chats/{id}/messages):
// the chats, most recent first, and the messages of the one chosen, in and out, newest first.
import { api, seg } from "../api.js";
import { copyButton, field, form, h, refresh, when } from "../dom.js";

const PAGE = 20;

function preview(m) {
  if (!m) return "";
  if (m.deleted) return "(deleted)";
  return m.text || m.caption || `(${m.type})`;
}

function chatList(chats, chosen, choose) {
  if (!chats.length) return h("p", { class: "empty" }, "No conversation yet: messages sent and received show here.");
  return h(
    "ul",
    { class: "chats", "aria-label": "Chats, most recent first" },
    chats.map((c) =>
      h(
        "li",
        {},
        h(
          "button",
          { type: "button", class: "chat", "aria-pressed": String(c.chatId === chosen), onclick: () => choose(c.chatId) },
          h("strong", {}, c.name || c.chatId),
          c.unread ? h("span", { class: "badge badge-unread", "aria-label": `${c.unread} unread` }, String(c.unread)) : null,
          c.name ? h("small", {}, c.chatId) : null,
          h("span", { class: "chat-last" }, `${c.lastMessage && c.lastMessage.direction === "out" ? "You: " : ""}${preview(c.lastMessage)}`),
          h("small", {}, when(c.lastMessageAt)),
        ),
      ),
    ),
  );
}

function bubble(m) {
  const who = m.direction === "out" ? "Sent" : m.from || m.fromLid || "Received";
  const reactions = m.reactions.map((r) => r.emoji).join(" ");
  return h(
    "li",
    { class: `bubble ${m.direction}` },
    h("p", {}, preview(m), m.edited ? h("small", {}, " (edited)") : null),
    h(
      "p",
      { class: "meta" },
      `${who} · ${when(m.timestamp)} · ${m.status}`,
      reactions ? ` · ${reactions}` : "",
      " ",
      copyButton(m.id || m.messageId, `message id ${m.id || m.messageId}`),
    ),
  );
}

// A text to the chosen chat, through the normal lane like any send (202: it shows once sent).
function replyForm(name, chatId, again) {
  const text = h("textarea", { name: "text", rows: "2", required: true });
  return form(`Reply to ${chatId}`, [field("Reply", text)], "Send reply", async () => {
    const queued = await api("POST", "/message/text", { instanceName: name, to: chatId, text: text.value });
    text.value = "";
    again();
    return `Queued as ${queued.id}.`;
  });
}

function thread(chatId, messages) {
  return h(
    "div",
    {},
    h("h3", {}, chatId),
    h("ol", { class: "bubbles", "aria-label": `Messages with ${chatId}, newest first` }, messages.map(bubble)),
  );
}

// `again()` reads everything again (the view's live follower): after a chat is chosen.
export function chatsPanel(name, again) {
  const path = `/instance/${seg(name)}`;
  const list = h("div", {}, h("p", {}, "Loading…"));
  const open = h("div");
  const reply = h("div");
  let chosen = null;

  async function load() {
    const chats = await api("GET", `${path}/chats?limit=${PAGE}`);
    if (!chosen && chats.items.length) chosen = chats.items[0].chatId;
    refresh(list, JSON.stringify([chosen, chats.items]), () => chatList(chats.items, chosen, choose));
    if (chosen) {
      const out = await api("GET", `${path}/chats/${seg(chosen)}/messages?limit=${PAGE}`);
      refresh(open, JSON.stringify([chosen, out.items]), () => thread(chosen, out.items));
      refresh(reply, chosen, () => replyForm(name, chosen, again)); // kept while the chat stays: a draft survives
    }
    return null;
  }

  function choose(chatId) {
    chosen = chatId;
    again();
  }

  return { node: h("div", { class: "conversations" }, list, h("div", { class: "thread" }, open, reply)), load };
}
