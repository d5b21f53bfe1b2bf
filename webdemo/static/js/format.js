// How numbers and verdicts read on screen, in one place.
import { h } from "./dom.js";

export const SIMILARITY_HELP =
  "Cosine similarity of the two images' VGG16 features at this layer: 1.000 means identical features, " +
  "lower means less alike. Compare values within a layer, not across layers.";

export const CALIBRATED_HELP =
  "Calibrated score: the share of unseen real images (training images held out from the comparison) " +
  "that come LESS close to the training set than this at this layer. 99% = closer than 99% of " +
  "genuinely new images come, which is what a copy looks like; around 50% = an ordinary resemblance.";

export const COPY_HELP =
  "Copy p-value, every piece of evidence (the layers and, where the run has it, the aligned pixel match) combined and calibrated on unseen real images: the share of genuinely " +
  "new images that come at least this close to the training set. Small = suspiciously close. A " +
  "sample is a copy when it is at or below the run's false-positive rate.";

export const NOVELTY_HELP =
  "Novelty: 1 minus the similarity to the nearest training image at the deepest layer. Higher means " +
  "further from everything in the training set.";

// Larger = more novel: the calibrated copy p-value first (runs with verdicts), then raw distance.
export function compareNovelty(a, b) {
  const pa = a.copy_p_value ?? 0;
  const pb = b.copy_p_value ?? 0;
  if (pa !== pb) return pa - pb;
  return (a.novelty ?? -Infinity) - (b.novelty ?? -Infinity);
}

export function fmtSimilarity(value) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(3);
}

// A level that a score must exceed: three decimals, but one just under 1 (an aligned-match threshold
// of 0.99998) gets the digits that tell it apart from 1, so "not above 1.000" is never said of it.
export function fmtThreshold(value) {
  if (value === null || value === undefined) return "–";
  const v = Number(value);
  let digits = 3;
  while (digits < 6 && v < 1 && Number(v.toFixed(digits)) >= 1) digits += 1;
  return v.toFixed(digits);
}

export function fmtPercent(value) {
  if (value === null || value === undefined) return "–";
  const percent = Number(value) * 100;
  if (percent > 99 && percent < 100) return `${percent.toFixed(1)}%`;
  return `${Math.round(percent)}%`;
}

// "1 image", "23 groups": a count with its unit.
export function countOf(n, unit) {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

// The count a training view shows, in its units: images, and for duplicate groups the groups too.
export function viewCount(key, counts) {
  const images = countOf(counts[key] ?? 0, "image");
  return key === "duplicates" ? `${countOf(counts.duplicate_groups ?? 0, "group")}, ${images}` : images;
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
