// A tenant's opt-out list (GET/POST/DELETE /tenant/{id}/suppressions): numbers that get no
// message, whether an operator added them here or the contact replied with an opt-out keyword.
// The admin picks the tenant.
import { api, seg } from "../api.js";
import { action, describe, field, form, h, refresh, table, when } from "../dom.js";
import { follow } from "../live.js";

function rows(list, base, again) {
  return list.map((s) => [
    s.number,
    s.reason || "—",
    s.source === "keyword" ? "the contact (keyword)" : "API",
    when(s.addedAt),
    action("Remove", async () => {
      await api("DELETE", `${base}/${seg(s.number)}`);
      return `${s.number} removed from the opt-out list.`;
    }, { class: "small danger", "aria-label": `Remove ${s.number}` }, again),
  ]);
}

function addForm(base, again) {
  const numbers = h("textarea", { name: "numbers", rows: "3", required: true });
  const reason = h("input", { name: "reason", maxlength: "200" });
  return form(
    "Add to the opt-out list",
    [field("Numbers", numbers, "International digits only, one per line or separated by commas"), field("Reason (optional)", reason)],
    "Add",
    async () => {
      const body = { numbers: numbers.value.split(/[\s,]+/).filter(Boolean) };
      if (reason.value.trim()) body.reason = reason.value.trim();
      const out = await api("POST", base, body);
      numbers.value = "";
      again();
      return out.added.length ? `Added: ${out.added.join(", ")}.` : "These numbers were on the list already.";
    },
  );
}

function tenantPage(box, tenantId, signal) {
  const base = `/tenant/${seg(tenantId)}/suppressions`;
  const list = h("div", {}, h("p", {}, "Loading…"));
  const problem = h("p", { class: "result error", role: "alert" });
  const again = () => follower.reload();
  box.replaceChildren(
    h("section", { class: "card wide", "aria-labelledby": "optouts-h" }, h("h2", { id: "optouts-h" }, `Opt-outs of ${tenantId}`), list, problem),
    h("section", { class: "card", "aria-labelledby": "optout-add-h" }, h("h2", { id: "optout-add-h" }, "Add numbers"), addForm(base, again)),
  );
  // A STOP from a contact comes as contact.opted_out: the list is read again then.
  const follower = follow(signal, {
    gather: 2000,
    load: async () => {
      const out = await api("GET", base);
      problem.textContent = "";
      refresh(list, JSON.stringify(out), () =>
        table("Numbers that get no message", ["Number", "Reason", "Added by", "Added", "Action"], rows(out.suppressions, base, again), "Nobody opted out."),
      );
      return null;
    },
    onError: (error) => {
      problem.textContent = describe(error);
    },
  });
}

export function optOutsView(main, { me, signal }) {
  const box = h("div", { class: "grid" });
  main.replaceChildren(h("h1", {}, "Opt-outs"), box);
  if (!me.admin) {
    tenantPage(box, me.tenantId, signal);
    return;
  }
  // The admin: one tenant at a time, its page following events until another is picked.
  const picker = h("select", { name: "tenant" });
  let leave = new AbortController();
  const pick = () => {
    leave.abort();
    leave = new AbortController();
    signal.addEventListener("abort", () => leave.abort());
    if (picker.value) tenantPage(box, picker.value, leave.signal);
  };
  picker.addEventListener("change", pick);
  main.insertBefore(h("div", { class: "card narrow" }, field("Tenant", picker)), box);
  api("GET", "/admin/tenants").then((tenants) => {
    picker.replaceChildren(...tenants.map((t) => h("option", { value: t.tenantId }, t.tenantId)));
    pick();
  }, (error) => box.replaceChildren(h("p", { class: "result error", role: "alert" }, describe(error))));
}
