// The gallery: every generated sample as a lazy thumbnail, sortable by novelty, filterable by verdict.
import { fill, h } from "./dom.js";
import { CALIBRATED_HELP, COPY_HELP, NOVELTY_HELP, SIMILARITY_HELP, compareNovelty, fmtPercent, fmtSimilarity, verdictBadge } from "./format.js";
import { source } from "./source.js";
import { session } from "./state.js";

export const SORTS = {
  novelty: { label: "Most novel first", compare: (a, b) => compareNovelty(b, a) },
  copied: { label: "Most copy-like first", compare: compareNovelty },
  id: { label: "Sample id", compare: null },
};
export const DEFAULT_SORT = "novelty";

// The samples in the order a gallery with this sort and verdict filter shows them: the one order the
// gallery and a sample page's "12 of 100" and previous / next share, however the page was reached.
export function galleryOrder(items, sort, verdict) {
  const shown = verdict ? items.filter((r) => (r.verdict || "") === verdict) : items.slice();
  if (SORTS[sort].compare) shown.sort(SORTS[sort].compare);
  return shown;
}

// "?sort=novelty&verdict=copy": the order's part of a gallery or sample address.
export function orderQuery(sort, verdict) {
  const query = new URLSearchParams({ sort });
  if (verdict) query.set("verdict", verdict);
  return `?${query}`;
}

export async function renderGallery(root, params) {
  const [list, summary] = await Promise.all([source.samples(), source.summary()]);
  const sort = SORTS[params.get("sort")] ? params.get("sort") : session.galleryState.sort;
  const verdict = params.has("verdict") ? params.get("verdict") : session.galleryState.verdict;
  session.galleryState = { sort, verdict };
  const deepest = list.layers[list.layers.length - 1];
  const hasVerdicts = Object.keys(list.verdicts).length > 0;

  const items = galleryOrder(list.items, sort, verdict);
  const link = (changes) => {
    const next = { sort, verdict, ...changes };
    return `#/${orderQuery(next.sort, next.verdict)}`;
  };
  const verdictChips = Object.keys(list.verdicts).length
    ? h("div", { class: "chips", role: "group", "aria-label": "Filter by verdict" },
      h("a", { class: `chip${verdict ? "" : " active"}`, href: link({ verdict: "" }) }, `All (${list.total})`),
      Object.entries(list.verdicts).map(([name, n]) =>
        h("a", { class: `chip${verdict === name ? " active" : ""}`, href: link({ verdict: name }), dataset: { verdict: name } },
          verdictBadge(name), ` ${n}`)))
    : h("p", { class: "hint" }, "No verdicts yet: run the verdict stage to see copy / novel badges. Scores below come from the neighbour lists.");

  const sortSelect = h("select", {
    id: "sort", "aria-label": "Sort samples",
    onchange: (event) => { location.hash = link({ sort: event.target.value }); },
  }, Object.entries(SORTS).map(([key, { label }]) => h("option", { value: key, selected: key === sort }, label)));

  const grid = h("ol", { class: "gallery", "aria-label": "Generated samples" });
  const fragment = document.createDocumentFragment();
  const order = orderQuery(sort, verdict);
  for (const record of items) fragment.append(card(record, deepest, hasVerdicts, order));
  grid.append(fragment);

  fill(root, 
    h("div", { class: "toolbar" },
      h("h2", null, "Generated samples ", h("span", { class: "count" }, `${items.length} shown`)),
      h("label", { class: "sort" }, "Sort ", sortSelect),
      verdictChips),
    h("p", { class: "hint" }, hasVerdicts
      ? `Each card: the copy p-value (the layers and the aligned pixel match combined, calibrated on unseen real images: small = suspiciously close), then the similarity to the nearest training image at ${deepest} and its calibrated score. Open a sample to see its nearest training images at every layer.`
      : `Each card: novelty (1 minus the similarity to the nearest training image at ${deepest}) and that similarity. Open a sample to see its nearest training images at every layer.`),
    grid);
  if (summary.counts.generated === 0) root.append(h("p", { class: "status" }, "This run has no generated samples."));
}

function card(record, deepest, hasVerdicts, order) {
  const score = record.layers[deepest] || {};
  return h("li", null,
    h("a", { class: "card", href: `#/sample/${encodeURIComponent(record.id)}${order}`, dataset: { id: record.id }, title: `Sample ${record.id}` },
      h("img", { src: source.imageUrl("generated", record.id, true), alt: `sample ${record.id}`, loading: "lazy", decoding: "async", width: 128, height: 128 }),
      hasVerdicts ? h("span", { class: "card-top" }, verdictBadge(record.verdict)) : null,
      h("span", { class: "card-meta" },
        h("span", { class: "card-id" }, record.id),
        h("span", { class: "card-scores" },
          record.copy_p_value !== null
            ? h("span", { title: COPY_HELP }, `copy p ${fmtSimilarity(record.copy_p_value)}`)
            : h("span", { title: NOVELTY_HELP }, `novelty ${fmtSimilarity(record.novelty)}`),
          h("span", { title: score.calibrated === null ? SIMILARITY_HELP : CALIBRATED_HELP },
            `sim ${fmtSimilarity(score.similarity)}`, score.calibrated === null ? "" : ` · ${fmtPercent(score.calibrated)}`)))));
}
