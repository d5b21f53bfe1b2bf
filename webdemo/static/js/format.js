// How numbers and verdicts read on screen, in one place.
import { h } from "./dom.js";

export const SIMILARITY_HELP =
  "Cosine similarity of the two images' VGG16 features at this layer: 1.000 means identical features, " +
  "lower means less alike. Compare values within a layer, not across layers.";

export const CALIBRATED_HELP =
  "Calibrated score: where this similarity falls among the run's reference similarities (how close " +
  "genuinely different training images come to each other). 99% means closer than 99% of those " +
  "pairs, as close as a copy usually is; 50% is an ordinary neighbour.";

export const NOVELTY_HELP =
  "Novelty: 1 minus the similarity to the nearest training image (deepest layer, unless the run's " +
  "verdicts define it). Higher means further from everything in the training set.";

export function fmtSimilarity(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

export function fmtPercent(value) {
  if (value === null || value === undefined) return "–";
  const percent = Number(value) * 100;
  if (percent > 99 && percent < 100) return `${percent.toFixed(1)}%`;
  return `${Math.round(percent)}%`;
}

export function fmtSeconds(value) {
  return value === null || value === undefined ? "–" : `${Number(value).toFixed(2)} s`;
}

// Verdict words come from the run's samples.csv; colour them by what they mean.
export function verdictTone(verdict) {
  const word = (verdict || "").toLowerCase();
  if (!word) return "none";
  if (/(near|suspect|similar|borderline|review|uncertain|possible)/.test(word)) return "warn";
  if (/(copy|copied|memori[sz]ed|duplicate|replica)/.test(word)) return "bad";
  if (/(novel|new|original|unique|ok)/.test(word)) return "good";
  return "neutral";
}

export function verdictBadge(verdict) {
  if (!verdict) return h("span", { class: "badge badge-none", title: "No verdict: the run has no samples.csv yet" }, "no verdict");
  return h("span", { class: `badge badge-${verdictTone(verdict)}`, title: `Verdict: ${verdict}` }, verdict);
}

export function layerTitle(layer, label) {
  return label && label !== layer ? `${layer} · ${label}` : layer;
}
