// The collection's modes (summary.json "modes", written by the verdict stage): per mode its most
// typical training images beside the samples that fell in it, and the two shares as bars.
import { encodeId, fill, h } from "./dom.js";
import { countOf, fmtPercent } from "./format.js";
import { source } from "./source.js";

const STATUS = {
  missed: ["bad", "Significantly fewer samples than the mode's share of the training set (less than half of it): the generator misses this mode"],
  "under-produced": ["warn", "Significantly fewer samples than the mode's share of the training set, but at least half of it"],
  "over-produced": ["warn", "Significantly more samples than the mode's share of the training set"],
  reproduced: ["good", "The samples' share agrees with the training share at the stated confidence"],
};

export async function renderModes(root) {
  const summary = await source.summary();
  const modes = (summary.statistics || {}).modes;
  if (!modes || !Array.isArray(modes.modes)) {
    fill(root, h("h2", null, "Modes"),
      h("p", { class: "hint" }, "This run has no modes: it was analysed without the verdict stage, or by an older version (re-run `novelty analyze`)."));
    return;
  }
  const rows = [...modes.modes].sort((a, b) => b.training_share - a.training_share);
  const top = Math.max(...rows.map((r) => Math.max(r.training_share, r.generated_ci[1])), 1e-9);
  const counts = modes.counts || {};
  fill(root,
    h("h2", null, "Modes"),
    h("p", { class: "hint" },
      `${countOf(modes.k, "mode")} of the training set (${modes.rule}). Each sample goes to its nearest mode; `,
      `a mode's share of the samples is tested against its share of the training set (${modes.test}, `,
      `${Math.round((1 - modes.alpha) * 100)}% confidence). The samples spread over `,
      h("b", null, (modes.effective_modes.generated ?? 0).toFixed(1)),
      ` effective modes, the training set over ${modes.effective_modes.training.toFixed(1)}. `,
      `With ${countOf(summary.counts.generated, "sample")}, a mode can be shown missed only if it holds at least `,
      `${fmtPercent(modes.smallest_missable_share)} of the training set: more samples show more.`),
    h("div", { class: "stat-cards" }, Object.entries(STATUS).map(([name, [tone, help]]) =>
      h("div", { class: "stat", title: help }, h("div", { class: "stat-value" }, String(counts[name] ?? 0)),
        h("div", { class: "stat-label" }, h("span", { class: `badge badge-${tone}` }, name))))),
    h("ol", { class: "modes" }, rows.map((row) => modeRow(row, top))));
}

function modeRow(row, top) {
  const [tone, help] = STATUS[row.status] || ["neutral", ""];
  const width = (share) => `${(100 * share) / top}%`;
  return h("li", { class: "mode", dataset: { mode: row.mode, status: row.status } },
    h("header", { class: "mode-head" },
      h("h3", null, `Mode ${row.mode} `, h("span", { class: `badge badge-${tone}`, title: help }, row.status)),
      h("span", { class: "layer-meta" }, `${countOf(row.training_count, "training image")} · ${countOf(row.generated_count, "sample")}`)),
    h("div", { class: "mode-bars", role: "img",
      "aria-label": `training share ${fmtPercent(row.training_share)}, samples ${fmtPercent(row.generated_share)}` },
      bar("training", width(row.training_share), fmtPercent(row.training_share)),
      bar("generated", width(row.generated_share), fmtPercent(row.generated_share),
        [width(row.generated_ci[0]), width(row.generated_ci[1])],
        `95% interval ${fmtPercent(row.generated_ci[0])} – ${fmtPercent(row.generated_ci[1])}`)),
    h("div", { class: "mode-images" },
      thumbs("Typical training images", "training", row.training_examples),
      thumbs("Samples in this mode", "generated", row.generated_examples)));
}

function bar(kind, width, label, ci, ciTitle) {
  return h("div", { class: `mode-bar mode-bar-${kind}`, title: ciTitle || "" },
    h("span", { class: "mode-bar-name" }, kind === "training" ? "training" : "samples"),
    h("span", { class: "mode-bar-track" },
      h("span", { class: "mode-bar-fill", style: `width: ${width}` }),
      ci ? h("span", { class: "mode-bar-ci", style: `left: ${ci[0]}; width: calc(${ci[1]} - ${ci[0]})` }) : null),
    h("span", { class: "mode-bar-value" }, label));
}

function thumbs(title, kind, ids) {
  return h("figure", { class: "mode-thumbs" }, h("figcaption", null, title),
    ids.length ? h("div", { class: "mode-thumb-row" }, ids.map((id) => {
      const img = h("img", { src: source.imageUrl(kind, id, true), alt: `${kind} image ${id}`, title: id, loading: "lazy", width: 64, height: 64 });
      return kind === "generated" ? h("a", { href: `#/sample/${encodeId(id)}` }, img) : img;
    })) : h("p", { class: "hint" }, "none"));
}
