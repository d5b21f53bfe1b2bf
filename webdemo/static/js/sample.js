// One generated sample, large, then its top-k training neighbours at each layer.
import { fill, h, statusMessage } from "./dom.js";
import { CALIBRATED_HELP, COPY_HELP, NOVELTY_HELP, SIMILARITY_HELP, fmtPercent, fmtSimilarity, verdictBadge } from "./format.js";
import { source } from "./source.js";
import { session } from "./state.js";
import { neighbourSection } from "./tiles.js";

const P_HELP = "Conformal p-value of this layer alone: the chance that an unseen real image " +
  "comes this close to the training set. Small = suspiciously close.";
const ALIGNED_HELP = "Aligned pixel match: the best correlation of fine detail after lining the sample up with " +
  "one of its nearest training images over crops (75-100% of each side), offsets and mirror images. " +
  "1 = the same pixels; a crop or rescale of a training image scores high where the VGG layers miss it.";

export async function renderSample(root, id) {
  const [sample, summary] = await Promise.all([source.sample(id), source.summary()]);
  const layers = summary.layers;
  const fpr = ((summary.statistics || {}).calibration || {}).false_positive_rate;
  const order = session.order || null;
  const position = order ? order.indexOf(id) : -1;
  const previous = position >= 0 ? order[position - 1] || null : sample.previous;
  const next = position >= 0 ? order[position + 1] || null : sample.next;
  const count = order ? order.length : summary.counts.generated;
  const index = position >= 0 ? position : sample.index;

  const nav = h("nav", { class: "sample-nav", "aria-label": "Samples" },
    h("a", { class: "button", href: "#/", title: "Back to the samples (Esc)" }, "← All samples"),
    h("a", { class: "button", href: previous ? `#/sample/${encodeURIComponent(previous)}` : null, "aria-disabled": previous ? null : "true", id: "prev-sample", title: "Previous sample (←)" }, "‹ Previous"),
    h("span", { class: "position" }, `${index + 1} of ${count}`),
    h("a", { class: "button", href: next ? `#/sample/${encodeURIComponent(next)}` : null, "aria-disabled": next ? null : "true", id: "next-sample", title: "Next sample (→)" }, "Next ›"));

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
    agreementLine(sample.agreement),
    alignedLine(sample.aligned));

  const sections = h("div", { class: "layers" }, statusMessage("Loading neighbours…"));
  fill(root, 
    h("div", { class: "sample-view", dataset: { sample: sample.id } },
      nav,
      h("div", { class: "sample-head" },
        h("img", { class: "sample-large", src: source.imageUrl("generated", sample.id), alt: `generated sample ${sample.id}` }),
        info),
      sections));

  const lists = await Promise.all(layers.map(({ layer }) => source.neighbours(sample.id, layer)));
  sections.replaceChildren(...lists.map(neighbourSection));
}

function alignedLine(aligned) {
  if (!aligned || !aligned.nearest) return null;
  const framing = aligned.scale === null || aligned.scale >= 1
    ? "at the same framing"
    : aligned.crop === "training"
      ? `the training image is a crop of the sample keeping ${fmtPercent(aligned.scale)} of each side`
      : `the sample is a crop of it keeping ${fmtPercent(aligned.scale)} of each side`;
  return h("p", { class: "aligned", title: ALIGNED_HELP },
    h("img", { class: "aligned-thumb", src: source.imageUrl("training", aligned.nearest, true), alt: `training image ${aligned.nearest}`, width: 48, height: 48 }),
    h("span", null, "Pixels line up best with ", h("b", { class: "mono" }, aligned.nearest),
      `: ${framing}${aligned.mirrored ? ", mirrored" : ""} (match ${fmtSimilarity(aligned.similarity)}).`));
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
