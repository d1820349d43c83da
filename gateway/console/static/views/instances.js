import { api, seg } from "../api.js";
import { badge, copyButton, describe, field, form, h, refresh, table, when } from "../dom.js";
import { follow } from "../live.js";

// A tenant key lists its own instances; the admin key lists every tenant's, a page of 1,000 per
// call (one call per poll however many tenants there are, not one per tenant).
async function listInstances(me) {
  if (!me.admin) return api("GET", `/tenant/${seg(me.tenantId)}/instances`);
  const found = [];
  let cursor = "";
  do {
    const page = await api("GET", `/admin/instances?limit=1000${cursor && `&cursor=${encodeURIComponent(cursor)}`}`);
    found.push(...page.items);
    cursor = page.next || "";
  } while (cursor);
  return found;
}

function instanceRows(instances) {
  return instances.map((i) => [
    h("span", { class: "copyable" }, h("a", { href: `#/instance/${seg(i.instanceName)}` }, i.instanceName), copyButton(i.instanceName, `instance name ${i.instanceName}`)),
    badge(i.state),
    i.phoneNumber || "—",
    String(i.messagesQueuedCount),
    when(i.connectedAt),
  ]);
}

function randomSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function createForm(me) {
  const name = h("input", { name: "instanceName", required: true, value: me.admin ? "" : `${me.tenantId}__` });
  const url = h("input", { name: "webhookUrl", type: "url", required: true, placeholder: "https://…" });
  const secret = h("input", { name: "webhookSecret", required: true, minlength: "16", value: randomSecret() });
  // A number new to sending is safer eased in; one that has sent for years needs no warm-up.
  const deliverability = h(
    "select",
    { name: "deliverability" },
    h("option", { value: "cautious", selected: true }, "Cautious (proposed for a new number)"),
    h("option", { value: "standard" }, "Standard"),
  );
  return form(
    "Create an instance",
    [
      field("Instance name", name, "tenant__client__label, e.g. acme__shop1__sales"),
      field("Webhook URL", url, "Where the gateway posts this number's events"),
      field("Webhook secret", secret, "At least 16 characters; keep a copy, it is never shown again"),
      field(
        "Deliverability",
        deliverability,
        "Cautious: besides the lane quotas, a new number's quotas grow over its first week (warm-up), " +
          "it writes to few strangers a day, and bulk waits a day between two messages to one person. " +
          "Pick Standard for a number that already sends daily. Changeable later in the instance's settings.",
      ),
    ],
    "Create and link",
    async () => {
      const body = {
        instanceName: name.value.trim(),
        webhookUrl: url.value.trim(),
        webhookSecret: secret.value,
        settings: { deliverability: deliverability.value },
      };
      const created = await api("POST", "/instance/create", body);
      location.hash = `#/instance/${seg(created.instanceName)}`;
    },
  );
}

export function instancesView(main, { me, signal }) {
  const list = h("div", { class: "list" }, h("p", {}, "Loading…"));
  const problem = h("p", { class: "result error", role: "alert" });
  main.replaceChildren(
    h("h1", {}, "Instances"),
    h("section", { class: "card wide", "aria-labelledby": "list-h" }, h("h2", { id: "list-h" }, "Numbers"), list, problem),
    h("section", { class: "card", "aria-labelledby": "create-h" }, h("h2", { id: "create-h" }, "New instance"), createForm(me)),
  );
  // Instances change state with an event (connected, disconnected, ...); queue counts with sends.
  follow(signal, {
    gather: me.admin ? 2000 : 250, // the admin's stream carries every tenant's events
    load: async () => {
      const instances = await listInstances(me);
      problem.textContent = "";
      refresh(list, JSON.stringify(instances), () =>
        table("Instances and their state", ["Instance", "State", "Phone", "Waiting", "Connected"], instanceRows(instances), "No instance yet."),
      );
      return null;
    },
    onError: (error) => {
      problem.textContent = describe(error);
    },
  });
}
