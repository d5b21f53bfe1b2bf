// One generated sample, large, then its top-k training neighbours at each layer.
import { fill, h, statusMessage } from "./dom.js";
import { CALIBRATED_HELP, COPY_HELP, NOVELTY_HELP, SIMILARITY_HELP, fmtPercent, fmtSimilarity, fmtThreshold, verdictBadge } from "./format.js";
import { DEFAULT_SORT, SORTS, galleryOrder, orderQuery } from "./gallery.js";
import { source } from "./source.js";
import { neighbourSection } from "./tiles.js";

const P_HELP = "Conformal p-value of this layer alone: the chance that an unseen real image " +
  "comes this close to the training set. Small = suspiciously close.";
const ALIGNED_HELP = "Aligned pixel match: the best correlation of fine detail after lining the sample up with " +
  "one of its nearest training images over crops (75-100% of each side), offsets and mirror images. " +
  "1 = the same pixels; a crop or rescale of a training image scores high where the VGG layers miss it.";

export async function renderSample(root, id, params = new URLSearchParams()) {
  const [sample, summary, list] = await Promise.all([source.sample(id), source.summary(), source.samples()]);
  const layers = summary.layers;
  const fpr = ((summary.statistics || {}).calibration || {}).false_positive_rate;
  // One order, named in the address (the gallery's links carry it), the gallery's default without it.
  const sort = SORTS[params.get("sort")] ? params.get("sort") : DEFAULT_SORT;
  let verdict = params.get("verdict") || "";
  let order = galleryOrder(list.items, sort, verdict).map((r) => r.id);
  if (!order.includes(id)) {  // a filter the sample is not in: all samples, in the same sort
    verdict = "";
    order = galleryOrder(list.items, sort, verdict).map((r) => r.id);
  }
  const query = orderQuery(sort, verdict);
  const position = order.indexOf(id);
  const [previous, next] = [order[position - 1] || null, order[position + 1] || null];
  const orderName = `${SORTS[sort].label.toLowerCase()}${verdict ? `, ${verdict} only` : ""}`;
  const link = (other) => (other ? `#/sample/${encodeURIComponent(other)}${query}` : null);

  const nav = h("nav", { class: "sample-nav", "aria-label": "Samples" },
    h("a", { class: "button", href: `#/${query}`, title: "Back to the samples (Esc)" }, "← All samples"),
    h("a", { class: "button", href: link(previous), "aria-disabled": previous ? null : "true", id: "prev-sample", title: "Previous sample (←)" }, "‹ Previous"),
    h("span", { class: "position", title: `Order: ${orderName}` }, `${position + 1} of ${order.length}`,
      h("span", { class: "order-name" }, ` · ${orderName}`)),
    h("a", { class: "button", href: link(next), "aria-disabled": next ? null : "true", id: "next-sample", title: "Next sample (→)" }, "Next ›"));

  const has = (key) => layers.some(({ layer }) => (sample.layers[layer] || {})[key] !== null);
  const calibrated = has("calibrated");
  const pValues = has("p_value");
  const scoreRow = (name, label, score, similarityHelp, rowClass = null) => h("tr", { class: rowClass },
    h("th", { scope: "row" }, name, h("span", { class: "layer-label" }, label)),
    h("td", { class: "num", title: similarityHelp }, fmtSimilarity(score.similarity)),
    calibrated ? h("td", { class: "num", title: CALIBRATED_HELP }, fmtPercent(score.calibrated)) : null,
    pValues ? h("td", { class: "num", title: P_HELP }, fmtSimilarity(score.p_value)) : null,
    h("td", { class: "nearest mono" }, score.nearest || "–"));
  const rows = layers.map(({ layer, label }) => scoreRow(layer, label, sample.layers[layer] || {}, SIMILARITY_HELP));
  if (sample.aligned) {
    rows.push(scoreRow("aligned pixels", "crops, rescales, mirror images", sample.aligned, ALIGNED_HELP, "aligned-row"));
  }

  const info = h("div", { class: "sample-info" },
    h("h2", null, "Sample ", h("span", { class: "mono" }, sample.id), " ", summary.has_verdicts ? verdictBadge(sample.verdict) : null),
    h("p", { class: "headline" },
      sample.copy_p_value !== null
        ? h("span", { class: "help", title: COPY_HELP }, "Copy p-value ", h("b", null, fmtSimilarity(sample.copy_p_value)),
          fpr !== undefined ? ` (a copy at ${fmtSimilarity(fpr)} or below)` : "")
        : null,
      h("span", { title: NOVELTY_HELP }, "Novelty ", h("b", null, fmtSimilarity(sample.novelty)))),
    identicalLine(sample.identical),
    sample.duplicate_group
      ? h("p", { class: "hint" }, `Near-identical to other generated samples (group ${sample.duplicate_group}): a sign of mode collapse.`)
      : null,
    h("table", { class: "scores-table" },
      h("thead", null, h("tr", null,
        h("th", null, "Layer"), h("th", { title: SIMILARITY_HELP }, "Nearest similarity"),
        calibrated ? h("th", { class: "help", title: CALIBRATED_HELP }, "Calibrated") : null,
        pValues ? h("th", { class: "help", title: P_HELP }, "p-value") : null,
        h("th", null, "Nearest training image"))),
      h("tbody", null, rows)),
    truthLine(sample.conditional, layers, summary.run.k),
    agreementLine(sample.agreement),
    alignedLine(sample.aligned));

  const sections = h("div", { class: "layers" }, statusMessage("Loading neighbours…"));
  fill(root, 
    h("div", { class: "sample-view", dataset: { sample: sample.id } },
      nav,
      h("div", { class: "sample-head" },
        sample.conditional
          ? conditionalTriptych(sample)
          : h("img", { class: "sample-large", src: source.imageUrl("generated", sample.id), alt: `generated sample ${sample.id}` }),
        info),
      sections));

  const lists = await Promise.all(layers.map(({ layer }) => source.neighbours(sample.id, layer)));
  sections.replaceChildren(...lists.map(neighbourSection));
}

// A conditional run: the output between its input and its own ground truth.
function conditionalTriptych(sample) {
  const { input, truth } = sample.conditional;
  const figure = (kind, id, caption) => h("figure", { class: `triptych-${kind}` },
    id ? h("img", { class: "sample-large", src: source.imageUrl(kind, id), alt: `${caption} ${id}` })
      : h("div", { class: "sample-large missing" }, "none known"),
    h("figcaption", null, caption));
  return h("div", { class: "triptych" },
    figure("input", input, "input"), figure("generated", sample.id, "output"), figure("truth", truth, "ground truth"));
}

function truthLine(conditional, layers, k) {
  if (!conditional) return null;
  if (!conditional.truth) return h("p", { class: "truth-line" }, "No ground truth is known for this input: the plain verdict applies.");
  const place = (rank) => (k && rank > k ? `below all ${k} neighbours` : `rank ${rank} among the neighbours`);
  const parts = layers.map(({ layer }) =>
    `${layer} ${fmtSimilarity(conditional.truth_similarity[layer])} (${place(conditional.truth_rank[layer])})`);
  const split = conditional.truth_split ? ` (a ${conditional.truth_split === "heldout" ? "held-out" : "trained"} pair)` : "";
  return h("p", { class: "truth-line", title: "Similarity of the output to its own ground-truth target, and where that target would rank among the training neighbours below." },
    `Ground truth${split}: `, parts.join(", "), ". ",
    conditional.follows_truth
      ? h("b", null, "It follows its input: at least as close to its own truth as to any training target, so not a copy.")
      : "It is closer to a training target than to its own truth.");
}

function identicalLine(identical) {
  if (!identical) return null;
  return h("p", { class: "identical" }, "Identical to training image ", h("b", { class: "mono" }, identical.id),
    ` (${identical.kind || "same pixels"}): a copy whatever the calibration says.`);
}

// The aligned pixel match in words, only as far as the evidence goes: how the sample lines up with a
// training image where its score is above the level that separates crops from unseen real images.
function alignedLine(aligned) {
  if (!aligned || !aligned.nearest) return null;
  const level = aligned.level_from === "heldout"
    ? `above ${fmtThreshold(aligned.level)}, which no unseen real image reaches alone`
    : `above ${fmtThreshold(aligned.level)}, where crops of a training image score`;
  if (!aligned.evident) {
    return h("p", { class: "aligned weak", title: ALIGNED_HELP },
      `The pixels show no sign of a crop or rescale: the best aligned pixel match, ${fmtSimilarity(aligned.similarity)}, ` +
      `is not ${level}.`);
  }
  const share = fmtPercent(aligned.scale);
  const mirrored = aligned.mirrored ? ", mirrored" : "";
  const what = aligned.scale === null || aligned.scale >= 1
    ? ["The sample's fine detail matches training image ", `${mirrored} at the same framing`]
    : aligned.crop === "training"
      ? ["The sample looks like training image ", `${mirrored}, zoomed out: that image fills ${share} of each side of the sample`]
      : ["The sample looks like a close-up of training image ", `${mirrored}: a part of it keeping ${share} of each side, enlarged`];
  return h("p", { class: "aligned", title: ALIGNED_HELP },
    h("img", { class: "aligned-thumb", src: source.imageUrl("training", aligned.nearest, true), alt: `training image ${aligned.nearest}`, width: 48, height: 48 }),
    h("span", null, what[0], h("b", { class: "mono" }, aligned.nearest),
      `${what[1]} (aligned pixel match ${fmtSimilarity(aligned.similarity)}, ${level}).`));
}

function agreementLine(agreement) {
  if (!agreement) return null;
  const [a, b] = agreement.layers;
  return h("p", { class: "agreement", title: "Training images found in the top-k of both layers. When the colour/texture match and the shape match point at the same very close training images, the sample is likely a copy of them." },
    "Layer agreement: ", h("b", null, `${agreement.shared} of ${agreement.k}`),
    ` neighbours appear at both ${a} and ${b} (Jaccard ${fmtSimilarity(agreement.jaccard)}); `,
    agreement.top1_same ? h("b", null, "the nearest image is the same") : "the nearest images differ",
    ".");
}
