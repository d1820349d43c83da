// Small DOM helpers. Nodes are built from data with textContent, never by parsing HTML, so
// nothing the API returns (names, message texts, errors) can turn into markup.

let ids = 0;

export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

// Tells screen readers what just happened (the page's polite live region).
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  region.textContent = text;
}

// An input with its label (and an optional hint tied to it by aria-describedby).
export function field(label, input, hint) {
  const id = input.id || `f${++ids}`;
  input.id = id;
  const parts = [h("label", { for: id }, label), input];
  if (hint) {
    input.setAttribute("aria-describedby", `${id}-hint`);
    parts.push(h("small", { id: `${id}-hint`, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, ...parts);
}

// A form whose submit runs `action(form)`; it shows the outcome in its own alert line and keeps
// the button disabled while the call is on its way.
export function form(label, fields, submitText, action) {
  const result = h("p", { class: "result", role: "alert" });
  const button = h("button", { type: "submit" }, submitText);
  const node = h("form", { "aria-label": label, novalidate: true }, ...fields, button, result);
  node.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    result.className = "result";
    result.textContent = "";
    try {
      const message = await action(node);
      if (message) result.append(message);
    } catch (error) {
      result.className = "result error";
      result.textContent = describe(error);
    } finally {
      button.disabled = false;
    }
  });
  return node;
}

export function describe(error) {
  return typeof error.describe === "function" ? error.describe() : String(error.message || error);
}

export function badge(value) {
  return h("span", { class: `badge badge-${value}` }, value);
}

// A table that scrolls sideways inside its own box on a narrow screen.
export function table(caption, headings, rows, empty) {
  const body = rows.length
    ? rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))
    : [h("tr", {}, h("td", { colspan: headings.length, class: "empty" }, empty))];
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((heading) => h("th", { scope: "col" }, heading)))),
      h("tbody", {}, body),
    ),
  );
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

// Calls `fn` now and then every `ms` until `signal` aborts (the view was left); a failing call
// shows in `onError` and polling goes on. A tab in the background skips its polls.
export function every(ms, signal, fn, onError) {
  let timer;
  const tick = async () => {
    if (signal.aborted) return;
    try {
      if (!document.hidden) await fn();
    } catch (error) {
      if (onError) onError(error);
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  tick();
}

// Replaces the content of `box` only when what it shows changed, so a poll does not steal the
// focus from a button the user is on.
export function refresh(box, key, build) {
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(build());
}
