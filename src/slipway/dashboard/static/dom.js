// Building DOM nodes. Text always goes in as text nodes (textContent), never as HTML: log
// lines, request paths and error messages come from users and apps.

/**
 * h("div", {class: "x", title: "y", onclick: f}, "text", child, [more, children])
 * Attributes starting with "on" are listeners; "dataset" is an object; null/false skip.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "style" && typeof value === "object") {
      for (const [name, v] of Object.entries(value)) {
        if (name.startsWith("--")) el.style.setProperty(name, v);
        else el.style[name] = v;
      }
    } else if (key === "href") {
      el.setAttribute("href", safeHref(String(value)));
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Only http(s) and our own paths become links (a `javascript:` URL never does). */
export function safeHref(url) {
  if (url.startsWith("/") && !url.startsWith("//")) return url;
  try {
    const parsed = new URL(url);
    if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.href;
  } catch {
    /* not a URL */
  }
  return "#";
}

/** Replace an element's children, only when what they show changed (keeps selections and
 *  scroll positions while polling). `key` is any JSON-able description of the content. */
export function fill(el, key, build) {
  const text = JSON.stringify(key);
  if (el.dataset.key === text) return false;
  el.dataset.key = text;
  const built = build();
  el.replaceChildren(...(Array.isArray(built) ? built : [built]).filter((c) => c));
  return true;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** A titled panel: returns [panel, body]. */
export function panel(title, opts = {}) {
  const body = h("div", { class: "panel-body", id: opts.id });
  const extra = opts.extra || null;
  const el = h(
    "section",
    { class: `panel ${opts.class || ""}`, "data-panel": opts.name || null },
    h("header", { class: "panel-head" }, h("h2", {}, title), extra),
    body,
  );
  return [el, body];
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}
