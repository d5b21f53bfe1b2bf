// Small DOM helpers: elements are built with h(), never from HTML strings, so ids cannot inject markup.

export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    // loading="lazy" must be set before src, or the image is fetched at once
    if (attrs.loading) node.setAttribute("loading", attrs.loading);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
  }
  appendChildren(node, children);
  return node;
}

function appendChildren(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

// Replace a node's children; like h(), skips null / false and flattens arrays.
export function fill(node, ...children) {
  node.replaceChildren();
  appendChildren(node, children);
  return node;
}

// Ids are paths relative to the image folder: keep their slashes, escape everything else.
export function encodeId(id) {
  return id.split("/").map(encodeURIComponent).join("/");
}

export function statusMessage(text, kind = "status") {
  return h("p", { class: kind, role: kind === "error" ? "alert" : "status" }, text);
}
