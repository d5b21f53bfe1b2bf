// Set-level statistics of the run (summary.json, written by the verdict stage), its settings and plots.
import { fill, h } from "./dom.js";
import { countOf, fmtPercent, fmtSimilarity, verdictBadge, viewCount } from "./format.js";
import { source } from "./source.js";

export async function renderSummary(root) {
  const summary = await source.summary();
  const stats = summary.statistics || {};
  const n = summary.counts.generated;
  fill(root,
    h("h2", null, "Summary"),
    judgementWarnings(stats),
    h("div", { class: "stat-cards" },
      statCard("Generated samples", n),
      statCard("Training images", summary.counts.training),
      Object.entries(summary.verdicts).map(([name, count]) =>
        statCard(verdictBadge(name), `${count} (${Math.round((100 * count) / Math.max(1, n))}%)`)),
      recallCard(summary.search_index)),
    summary.has_verdicts ? null : h("p", { class: "hint" }, "No verdicts yet (samples.csv is missing): the run was analysed without the verdict stage."),
    copiesPanel(stats),
    layerTable(summary, stats),
    curationPanel(summary, stats),
    warningsPanel(stats.warnings),
    summary.plots.length ? [h("h3", null, "Plots"), h("div", { class: "plots" }, summary.plots.map((name) =>
      h("figure", null, h("img", { src: source.plotUrl(name), alt: name, loading: "lazy" }), h("figcaption", null, name))))] : null,
    h("h3", null, "Layers"),
    h("ul", { class: "layer-list" }, summary.layers.map((l) => h("li", null, h("b", null, l.layer), ` (${l.label}): ${l.description}`))),
    h("h3", null, "Run settings"),
    keyValues([...runSettings(summary.run), ["Search", searchText(summary.search_index, summary.run.index),
      "Neighbour search backend; an approximate one (FAISS) with its recall@24 against exact search"]]),
    Object.keys(stats).length
      ? h("details", { class: "all-numbers" }, h("summary", null, "All numbers of summary.json"), statisticsTable(stats))
      : null);
}

function statCard(label, value) {
  return h("div", { class: "stat" }, h("div", { class: "stat-value" }, String(value)), h("div", { class: "stat-label" }, label));
}

function keyValues(rows) {
  return h("table", { class: "kv" }, h("tbody", null, rows.filter(([, value]) => value !== undefined).map(([key, value, title]) =>
    h("tr", { title }, h("th", { scope: "row" }, key), h("td", { class: "mono" }, value ?? "–")))));
}

const interval = (pair) => (Array.isArray(pair) ? `${fmtPercent(pair[0])} – ${fmtPercent(pair[1])}` : undefined);

function copiesPanel(stats) {
  const copies = stats.copies;
  const calibration = stats.calibration || {};
  if (!copies) return null;
  const level = copies.confidence ? ` (${Math.round(copies.confidence * 100)}%)` : "";
  return [h("h3", null, "Copies"), keyValues([
    ["Copy rate", `${fmtPercent(copies.rate)} (${copies.count} of ${copies.n})`],
    [`Exact interval${level}`, interval(copies.exact_interval), "Clopper-Pearson interval of the copy rate"],
    [`Bootstrap interval${level}`, interval(copies.bootstrap_interval)],
    ["Borderline samples", copies.borderline],
    ["False-positive rate", calibration.false_positive_rate !== undefined ? fmtPercent(calibration.false_positive_rate) : undefined,
      "Share of genuinely new images the rule would call copies"],
    ["Expected false positives", copies.expected_false_positives !== undefined ? copies.expected_false_positives.toFixed(1) : undefined],
    ["Held-out images (calibration)", calibration.n_heldout],
  ])];
}

function layerTable(summary, stats) {
  const calibration = stats.calibration || {};
  const copying = stats.copying_test || {};
  const prdc = stats.prdc || {};
  const distinct = (stats.mode_collapse || {}).distinct_top1 || {};
  if (!calibration.thresholds && !Object.keys(copying).length && !Object.keys(prdc).length) return null;
  const columns = [
    ["Copy threshold", (l) => fmtSimilarity((calibration.thresholds || {})[l]), "A sample more similar than this to its nearest training image is a copy at this layer"],
    ["C_T", (l) => fmtSimilarity((copying[l] || {}).c_t), "Data-copying test of Meehan et al. (2020): below about -3 is strong evidence of copying; n/a when too few samples"],
    ["Precision", (l) => fmtSimilarity((prdc[l] || {}).precision), "PRDC: share of samples inside the training manifold (fidelity)"],
    ["Recall", (l) => fmtSimilarity((prdc[l] || {}).recall), "PRDC: share of training images inside the samples' manifold (diversity)"],
    ["Density", (l) => fmtSimilarity((prdc[l] || {}).density)],
    ["Coverage", (l) => fmtSimilarity((prdc[l] || {}).coverage)],
    ["Distinct top-1 (samples / unseen)", (l) => (distinct[l] ? `${distinct[l].generated.toFixed(1)} / ${distinct[l].heldout.toFixed(1)} of ${distinct[l].n}` : "–"),
      "How many different training images are nearest to n samples, against n unseen real images: fewer for samples hints at mode collapse"],
  ];
  return [h("h3", null, "Per layer"), h("table", { class: "kv per-layer" },
    h("thead", null, h("tr", null, h("th", null, ""), summary.layers.map((l) => h("th", null, l.layer, h("span", { class: "layer-label" }, ` ${l.label}`))))),
    h("tbody", null, columns.map(([name, value, title]) =>
      h("tr", { title }, h("th", { scope: "row" }, name), summary.layers.map((l) => h("td", { class: "mono" }, value(l.layer)))))))];
}

// What the run cannot judge, first: a held-out set too small for the rate, a generated folder that is
// (or shares files with) the training folder.
function judgementWarnings(stats) {
  const notes = [(stats.copies || {}).not_judged, (stats.overlap || {}).warning].filter(Boolean);
  if (!notes.length) return null;
  return h("div", { class: "judgement-warnings", role: "alert" }, notes.map((note) =>
    h("p", { class: "headline-warning" }, note.charAt(0).toUpperCase() + note.slice(1), ".")));
}

// The training-set counts are those of the Training tabs (one number per thing, with its unit).
function curationPanel(summary, stats) {
  const counts = summary.training_counts;
  const collapse = stats.mode_collapse || {};
  const curation = stats.curation || {};
  const flags = Object.entries(curation.flags || {}).map(([name, count]) => `${name.replaceAll("_", " ")} ${count}`).join(", ");
  return [h("h3", null, "Training set and samples"), keyValues([
    ["Duplicate groups (training)", viewCount("duplicates", counts)],
    ["Outliers", viewCount("outliers", counts)],
    ["Hubs", `${viewCount("hubs", counts)}: ${counts.near_hubs} near many training images, ${counts.retrieval_hubs} retrieved by many samples`,
      "Training images near to many others, or retrieved by the samples far more often than chance; an image may be both"],
    ["Pixel flags", flags ? `${viewCount("flagged", counts)}: ${flags}` : undefined],
    ["Near-identical sample groups", collapse.duplicate_groups !== undefined ? `${countOf(collapse.duplicate_groups, "group")}, ${countOf(collapse.samples_in_duplicate_groups, "sample")}` : undefined, "Groups of generated samples that are near copies of each other: mode collapse"],
  ])];
}

function warningsPanel(warnings) {
  if (!Array.isArray(warnings) || !warnings.length) return null;
  return [h("h3", null, "Warnings"), h("ul", { class: "warnings" }, warnings.map((w) => h("li", null, w)))];
}

function runSettings(run) {
  const weights = run.weights || {};
  return [
    ["Training images", run.train_dir],
    ["Generated samples", run.generated_dir],
    ["Checkpoint", run.checkpoint || "–"],
    ["Layers", (run.layers || []).join(", ")],
    ["Neighbours per layer (k)", run.k],
    ["Weights", [weights.requested, weights.source].filter(Boolean).join(" · ")],
    ["Preprocessing", run.preprocess],
    ["Input size", run.input_size ?? "native"],
    ["Fit", run.fit ?? undefined],
    ["Index", run.index],
    ["Seed", run.seed ?? undefined],
    ["Created", run.created],
  ];
}

// An approximate search's recall@24 against exact search, measured on a seeded sample of queries.
function recallCard(index) {
  if (!index || !index.approximate || typeof index.recall_at_k !== "number") return null;
  return h("div", { class: "stat recall", title: `lowest over ${index.searches.length} searches, ${index.recall_queries} queries each` },
    h("div", { class: "stat-value" }, index.recall_at_k.toFixed(3)), h("div", { class: "stat-label" }, `Recall@${index.recall_k} (${index.backend} vs exact)`));
}

function searchText(index, name) {
  if (!index) return name;
  const first = (index.searches || [])[0] || {};
  const named = ["nlist", "nprobe", "M", "efSearch"].filter((key) => first[key] !== undefined).map((key) => `${key} ${first[key]}`);
  const params = first.kind ? ` (${[first.kind, ...named].join(", ")})` : "";
  const recall = typeof index.recall_at_k === "number" ? ` · recall@${index.recall_k} ${index.recall_at_k.toFixed(3)} on ${index.recall_queries} queries` : "";
  return `${index.backend}${params}${recall} · asked: ${index.requested}`;
}

// summary.json in full: nested objects as dotted keys; long arrays and lists of objects summarised.
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
  return keyValues(rows);
}

function formatValue(value) {
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toPrecision(4);
  if (Array.isArray(value)) {
    if (value.length > 12 || value.some((v) => v && typeof v === "object")) return `[${value.length} values]`;
    return value.map(formatValue).join(", ");
  }
  if (value === null) return "–";
  return String(value);
}
