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

// A table; on a narrow screen each row becomes a card whose cells carry their heading (the
// CSS shows `data-label`), so no column (a status, a button) is ever off-screen. The roles are
// written out because a table laid out as blocks loses them in some browsers.
export function table(caption, headings, rows, empty) {
  const cell = (content, i) => h("td", { role: "cell", "data-label": headings[i] }, content);
  const body = rows.length
    ? rows.map((cells) => h("tr", { role: "row" }, cells.map(cell)))
    : [h("tr", { role: "row" }, h("td", { role: "cell", colspan: headings.length, class: "empty" }, empty))];
  return h(
    "div",
    { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    h(
      "table",
      { class: "cards", role: "table" },
      h("caption", {}, caption),
      h("thead", {}, h("tr", { role: "row" }, headings.map((heading) => h("th", { scope: "col", role: "columnheader" }, heading)))),
      h("tbody", {}, body),
    ),
  );
}

// A button that puts `text` on the clipboard (kept in data-copy too, for whoever reads the page).
// The clipboard needs a secure context (https, or the gateway on this machine): elsewhere the
// text is selected for a manual copy.
export function copyButton(text, what) {
  const node = h("button", { type: "button", class: "small copy", "data-copy": text, "aria-label": `Copy ${what}` }, "Copy");
  node.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      announce(`${what} copied.`);
    } catch {
      announce(`The browser refused the clipboard here: select the ${what} and copy it by hand.`);
    }
  });
  return node;
}

// `text` shown in monospace with its copy button.
export function copyable(text, what) {
  return h("span", { class: "copyable" }, h("code", {}, text), copyButton(text, what));
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

// Replaces the content of `box` only when what it shows changed, so reading it again does not
// steal the focus from a button the user is on.
export function refresh(box, key, build) {
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren(build());
}

// A button that runs `run()` and announces what it answers (or what went wrong); `after()` runs
// once it succeeded (say, to read the view again).
export function action(text, run, extra = {}, after = null) {
  const onclick = async () => {
    try {
      announce(await run());
      if (after) after();
    } catch (error) {
      announce(describe(error));
    }
  };
  return h("button", { type: "button", ...extra, onclick }, text);
}
