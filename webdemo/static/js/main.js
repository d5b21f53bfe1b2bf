// Hash routes: #/ gallery · #/sample/<id> · #/training · #/modes · #/summary · #/query. Keyboard navigation.
import { h, statusMessage } from "./dom.js";
import { renderGallery } from "./gallery.js";
import { renderModes } from "./modes.js";
import { renderQuery } from "./query.js";
import { renderSample } from "./sample.js";
import { source } from "./source.js";
import { session } from "./state.js";
import { renderSummary } from "./summary.js";
import { renderTraining } from "./training.js";

const root = document.getElementById("app");
let current = "";
let renderCount = 0;

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?");
  const params = new URLSearchParams(query);
  if (path.startsWith("sample/")) return { view: "sample", id: decodeURIComponent(path.slice(7)), params };
  if (["training", "modes", "summary", "query"].includes(path)) return { view: path, params };
  return { view: "gallery", params };
}

async function route() {
  const { view, id, params } = parseHash();
  delete root.dataset.ready;  // until this route has rendered: a stale mark would let a waiter through
  if (current === "gallery") session.galleryScroll = window.scrollY;
  current = view;
  const ticket = ++renderCount;
  document.querySelectorAll("[data-nav]").forEach((link) => {
    link.classList.toggle("active", link.dataset.nav === (view === "sample" ? "gallery" : view));
  });
  document.body.dataset.view = view;
  const target = h("div", { class: `view view-${view}` }, statusMessage("Loading…"));
  root.replaceChildren(target);
  try {
    if (view === "sample") await renderSample(target, id, params);
    else if (view === "training") await renderTraining(target, params);
    else if (view === "modes") await renderModes(target);
    else if (view === "summary") await renderSummary(target);
    else if (view === "query") await renderQuery(target);
    else await renderGallery(target, params);
  } catch (error) {
    if (ticket === renderCount) target.replaceChildren(statusMessage(error.message, "error"));
    return;
  }
  if (ticket !== renderCount) return;
  if (view === "gallery") window.scrollTo(0, session.galleryScroll || 0);
  else if (view !== "sample" || !document.activeElement || document.activeElement === document.body) window.scrollTo(0, 0);
  root.dataset.readyHash = location.hash;  // which route is ready: views share a name across filters
  root.dataset.ready = view;
}

function galleryMove(key) {
  const cards = [...document.querySelectorAll(".gallery .card")];
  if (!cards.length) return false;
  const index = cards.indexOf(document.activeElement);
  if (index < 0) { cards[0].focus(); return true; }
  const top = cards[0].offsetTop;
  const firstBelow = cards.findIndex((card) => card.offsetTop !== top);
  const columns = firstBelow < 0 ? cards.length : firstBelow;
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[key];
  const next = cards[Math.min(cards.length - 1, Math.max(0, index + step))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
  return true;
}

document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.target.closest && event.target.closest("input, select, textarea, dialog")) return;
  if (current === "sample") {
    const target = { ArrowLeft: "#prev-sample", ArrowRight: "#next-sample", k: "#prev-sample", j: "#next-sample" }[event.key];
    if (target) {
      const link = document.querySelector(target);
      if (link && link.getAttribute("href")) location.hash = link.getAttribute("href");
      event.preventDefault();
    } else if (event.key === "Escape") {
      location.hash = "#/";
      event.preventDefault();
    }
  } else if (current === "gallery" && event.key.startsWith("Arrow")) {
    if (galleryMove(event.key)) event.preventDefault();
  }
});

window.addEventListener("hashchange", route);
source.summary().then((summary) => {
  const name = summary.run.generated_dir || "";
  document.getElementById("run-name").textContent = `${summary.counts.generated} samples · ${summary.counts.training} training images`;
  document.getElementById("run-name").title = name;
  if (!source.canQuery) document.querySelector('[data-nav="query"]').hidden = true;
}).catch(() => {});
route();
