// A layer's row of neighbour tiles (sample view and query view), and a viewer for one image.
import { h } from "./dom.js";
import { CALIBRATED_HELP, SIMILARITY_HELP, fmtPercent, fmtSimilarity, layerTitle } from "./format.js";
import { source } from "./source.js";

export function neighbourSection(list) {
  const tiles = list.groups.map((tile) => neighbourTile(tile, list.layer));
  const grouped = list.k - list.groups.length;
  return h("section", { class: "layer", dataset: { layer: list.layer }, "aria-label": `Neighbours at ${list.layer}` },
    h("header", { class: "layer-head" },
      h("h3", null, list.layer, " ", h("span", { class: "layer-label" }, list.label)),
      h("p", { class: "layer-desc" }, list.description),
      h("span", { class: "layer-meta" },
        `top ${list.k} training images`,
        grouped > 0 ? ` · ${grouped} duplicate${grouped > 1 ? "s" : ""} grouped` : "")),
    h("ol", { class: "tiles" }, tiles));
}

function neighbourTile(tile, layer) {
  const members = tile.ids.join("\n");
  const open = () => openViewer({
    src: source.imageUrl("training", tile.id),
    title: `Training image ${tile.id}`,
    lines: [
      `${layerTitle(layer)}: rank ${tile.rank}, similarity ${fmtSimilarity(tile.similarity)}${tile.calibrated === null ? "" : `, calibrated ${fmtPercent(tile.calibrated)}`}`,
      tile.count > 1 ? `${tile.count} duplicates in this list: ${tile.ids.join(", ")}` : null,
      tile.group_size > 1 ? `Duplicate group of ${tile.group_size} training images` : null,
    ],
  });
  return h("li", { class: "tile", dataset: { id: tile.id, rank: tile.rank } },
    h("button", { class: "tile-image", type: "button", title: `Training image ${tile.id} (rank ${tile.rank}); click to enlarge`, onclick: open },
      h("img", { src: source.imageUrl("training", tile.id, true), alt: `training image ${tile.id}`, loading: "lazy", decoding: "async", width: 96, height: 96 }),
      h("span", { class: "rank" }, `#${tile.rank}`),
      tile.count > 1
        ? h("span", { class: "dup-count", title: `${tile.count} identical or near-identical training images in this list:\n${members}` }, `×${tile.count}`)
        : null),
    h("div", { class: "scores" },
      h("span", { class: "similarity", title: SIMILARITY_HELP }, fmtSimilarity(tile.similarity)),
      tile.calibrated === null ? null : h("span", { class: "calibrated", title: CALIBRATED_HELP }, fmtPercent(tile.calibrated))),
    h("div", { class: "tile-id", title: members }, tile.count > 1 ? `${tile.id} +${tile.count - 1}` : tile.id));
}

let dialog = null;

export function openViewer({ src, title, lines = [] }) {
  if (!dialog) {
    dialog = h("dialog", { class: "viewer", onclick: (event) => { if (event.target === dialog) dialog.close(); } });
    document.body.append(dialog);
  }
  dialog.replaceChildren(
    h("form", { method: "dialog", class: "viewer-body" },
      h("h3", null, title),
      h("img", { src, alt: title }),
      lines.filter(Boolean).map((line) => h("p", null, line)),
      h("button", { type: "submit", class: "button" }, "Close")));
  dialog.showModal();
}
