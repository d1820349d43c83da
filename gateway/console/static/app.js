// The console's router: one view per location hash, re-rendered on hashchange. A view gets the
// main element, who is signed in, and an AbortSignal that fires when the user leaves it (its
// live updates stop then).
import { api, session } from "./api.js";
import { h } from "./dom.js";
import { instanceView } from "./views/instance.js";
import { instancesView } from "./views/instances.js";
import { optOutsView } from "./views/optouts.js";
import { overviewView } from "./views/overview.js";
import { signInView } from "./views/signin.js";
import { tenantsView } from "./views/tenants.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
let leave = new AbortController();

function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [page, ...rest] = hash.split("/");
  return { page, arg: rest.join("/") };
}

function renderNav(me) {
  const links = [["#/", "Instances"], ["#/optouts", "Opt-outs"]];
  if (me.admin) links.push(["#/overview", "Overview"], ["#/tenants", "Tenants and keys"]);
  const here = location.hash || "#/";
  nav.replaceChildren(
    ...links.map(([href, text]) => h("a", { href, "aria-current": here === href ? "page" : null }, text)),
    h("span", { class: "who" }, me.admin ? "admin" : `tenant ${me.tenantId}`),
    h("span", { id: "live", class: "live" }),
    h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"),
  );
}

// Shows `hash`, rendering again when the browser is already there (no hashchange then).
function go(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function signOut() {
  session.signOut();
  go("#/signin");
}

async function render() {
  leave.abort();
  leave = new AbortController();
  const { page, arg } = route();
  let me = null;
  if (session.key) {
    me = await api("GET", "/whoami").catch(() => null);
    if (!me) session.signOut();
  }
  if (!me || page === "signin") {
    nav.replaceChildren();
    signInView(main, () => go(page === "signin" ? "#/" : location.hash || "#/"));
  } else {
    renderNav(me);
    const views = { "": instancesView, instance: instanceView, optouts: optOutsView, overview: overviewView, tenants: tenantsView };
    const view = views[page] || instancesView;
    view(main, { me, arg, signal: leave.signal });
  }
  // Move the focus to the new page's heading, as a screen reader user expects after navigating.
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

window.addEventListener("hashchange", render);
render();
