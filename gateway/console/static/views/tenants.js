import { api, seg } from "../api.js";
import { announce, copyButton, describe, field, form, h, table, when } from "../dom.js";

// A new key is shown once, here, and never again (the gateway keeps only its hash).
function shownOnce(label, issued) {
  return h(
    "span",
    {},
    `${label}: `,
    h("code", { class: "secret" }, issued.apiKey),
    " ",
    copyButton(issued.apiKey, "API key"),
    ` (key id ${issued.keyId}). Copy it now: it is not shown again.`,
  );
}

export function tenantsView(main) {
  const list = h("div", {}, h("p", {}, "Loading…"));
  const issuedBox = h("p", { class: "result", role: "alert" });

  async function load() {
    const tenants = await api("GET", "/admin/tenants");
    const rows = tenants.map((t) => [
      t.tenantId,
      t.name,
      when(t.createdAt),
      h("ul", { class: "keys" }, t.keyIds.map((keyId) =>
        h("li", {}, h("code", {}, keyId), " ",
          h("button", { type: "button", class: "danger small", "aria-label": `Revoke key ${keyId}`, onclick: () => revoke(keyId) }, "Revoke")),
      )),
      h("button", { type: "button", "aria-label": `Issue a key for ${t.tenantId}`, onclick: () => issue(t.tenantId) }, "Issue a key"),
    ]);
    list.replaceChildren(table("Tenants and their API keys", ["Tenant", "Name", "Created", "Keys", "Action"], rows, "No tenant yet."));
  }
  async function issue(tenantId) {
    try {
      issuedBox.replaceChildren(shownOnce(`New key for ${tenantId}`, await api("POST", `/admin/tenants/${seg(tenantId)}/keys`)));
      await load();
    } catch (error) {
      announce(describe(error));
    }
  }
  async function revoke(keyId) {
    if (!confirm(`Revoke key ${keyId}? It stops working at once.`)) return;
    try {
      await api("DELETE", `/admin/keys/${seg(keyId)}`);
      announce(`Key ${keyId} revoked.`);
      await load();
    } catch (error) {
      announce(describe(error));
    }
  }

  const tenantId = h("input", { name: "tenantId", required: true, autocomplete: "off" });
  const tenantName = h("input", { name: "name", autocomplete: "off" });
  const create = form(
    "Create a tenant",
    [field("Tenant id", tenantId, "Lowercase letters, digits and single underscores"), field("Name (optional)", tenantName)],
    "Create tenant",
    async () => {
      const body = { tenantId: tenantId.value.trim() };
      if (tenantName.value.trim()) body.name = tenantName.value.trim();
      const created = await api("POST", "/admin/tenants", body);
      await load();
      return shownOnce(`Tenant ${created.tenantId} created. Its API key`, created);
    },
  );

  main.replaceChildren(
    h("h1", {}, "Tenants and keys"),
    h("div", { class: "grid" },
      h("section", { class: "card wide", "aria-labelledby": "tenants-h" }, h("h2", { id: "tenants-h" }, "Tenants"), list, issuedBox),
      h("section", { class: "card", "aria-labelledby": "new-tenant-h" }, h("h2", { id: "new-tenant-h" }, "New tenant"), create),
    ),
  );
  load().catch((error) => list.replaceChildren(h("p", { class: "result error", role: "alert" }, describe(error))));
}
