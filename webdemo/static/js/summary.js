// Set-level statistics of the run, its settings and its plots.
import { fill, h } from "./dom.js";
import { verdictBadge } from "./format.js";
import { source } from "./source.js";

export async function renderSummary(root) {
  const summary = await source.summary();
  const run = summary.run;
  const weights = run.weights || {};
  const settings = [
    ["Training images", run.train_dir],
    ["Generated samples", run.generated_dir],
    ["Checkpoint", run.checkpoint || "–"],
    ["Layers", (run.layers || []).join(", ")],
    ["Neighbours per layer (k)", run.k],
    ["Weights", [weights.requested, weights.source].filter(Boolean).join(" · ")],
    ["Preprocessing", run.preprocess],
    ["Input size", run.input_size ?? "native"],
    ["Index", run.index],
    ["Created", run.created],
  ];
  const verdicts = Object.entries(summary.verdicts);
  fill(root, 
    h("h2", null, "Summary"),
    h("div", { class: "stat-cards" },
      statCard("Generated samples", summary.counts.generated),
      statCard("Training images", summary.counts.training),
      verdicts.map(([name, n]) => statCard(verdictBadge(name), `${n} (${Math.round((100 * n) / Math.max(1, summary.counts.generated))}%)`))),
    summary.has_verdicts ? null : h("p", { class: "hint" }, "No verdicts yet (samples.csv is missing): the run was analysed without the verdict stage."),
    h("h3", null, "Layers"),
    h("ul", { class: "layer-list" }, summary.layers.map((l) => h("li", null, h("b", null, l.layer), ` (${l.label}): ${l.description}`))),
    Object.keys(summary.statistics).length ? [h("h3", null, "Statistics"), statisticsTable(summary.statistics)] : null,
    summary.plots.length ? [h("h3", null, "Plots"), h("div", { class: "plots" }, summary.plots.map((name) =>
      h("figure", null, h("img", { src: source.plotUrl(name), alt: name, loading: "lazy" }), h("figcaption", null, name))))] : null,
    h("h3", null, "Run settings"),
    h("table", { class: "kv" }, h("tbody", null, settings.map(([key, value]) =>
      h("tr", null, h("th", { scope: "row" }, key), h("td", { class: "mono" }, value ?? "–"))))));
}

function statCard(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value" }, String(value)), h("div", { class: "stat-label" }, label));
}

// summary.json is free-form: show nested objects as dotted keys, numbers to 4 significant digits.
function statisticsTable(statistics) {
  const rows = [];
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, inner);
    } else {
      rows.push([prefix, formatValue(value)]);
    }
  };
  walk("", statistics);
  return h("table", { class: "kv" }, h("tbody", null, rows.map(([key, value]) =>
    h("tr", null, h("th", { scope: "row" }, key), h("td", { class: "mono" }, value)))));
}

function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (Array.isArray(value)) return value.length > 12 ? `[${value.length} values]` : value.map(formatValue).join(", ");
  if (value === null) return "–";
  return String(value);
}
