// The training set, for curation: outliers, duplicate groups, hubs and pixel flags, with
// keep / reject marks and the exported list.
import { fill, h, statusMessage } from "./dom.js";
import { countOf, fmtSimilarity, viewCount } from "./format.js";
import { downloadList, loadMarks, markedIds, saveMarks } from "./marks.js";
import { source } from "./source.js";
import { openViewer } from "./tiles.js";

const FILTERS = [
  ["outliers", "Outliers", "Images far from the rest of the training set: off-topic, broken or mislabelled pictures."],
  ["duplicates", "Duplicate groups", "Identical or near-identical training images, shown together: keep one per group."],
  ["hubs", "Hubs", "Training images near to many others, or retrieved by many generated samples; most retrieved first."],
  ["flagged", "Pixel flags", "Near-blank, very dark, low-information or oddly shaped images."],
  ["all", "All", "Every training image the run knows."],
];
const PAGE = 500;

export async function renderTraining(root, params) {
  const asked = FILTERS.some(([key]) => key === params.get("filter")) ? params.get("filter") : null;
  let filter = asked || "outliers";
  const q = params.get("q") || "";
  const summary = await source.summary();
  const runKey = `${summary.run.train_dir}|${summary.run.created}`;
  const marks = loadMarks(runKey);
  let offset = 0;
  let first = await source.training({ filter, q, offset, limit: PAGE });
  const open = asked ? null : FILTERS.find(([key]) => first.counts[key] > 0);
  if (open && open[0] !== filter) {  // opened without a view: the first that holds images, never an empty page
    filter = open[0];
    first = await source.training({ filter, q, offset, limit: PAGE });
  }

  const counter = h("span", { class: "marks-count", "aria-live": "polite" });
  const refreshCounter = () => {
    counter.textContent = `${markedIds(marks, "keep").length} kept · ${markedIds(marks, "reject").length} rejected`;
  };
  refreshCounter();
  const examples = new Set();  // ids picked for "More like these" (this page only)
  const likeButton = h("button", { class: "button", type: "button", id: "more-like", disabled: true,
    title: "Rank the rest of the training set by likeness to the picked images (both layers)" }, "More like these (0)");
  const pick = (id, card) => {
    if (examples.has(id)) examples.delete(id);
    else examples.add(id);
    card.classList.toggle("picked", examples.has(id));
    card.querySelector(".mark.like").setAttribute("aria-pressed", String(examples.has(id)));
    likeButton.textContent = `More like these (${examples.size})`;
    likeButton.disabled = !examples.size;
  };
  const setMark = (id, value, card) => {
    if (marks[id] === value) delete marks[id];
    else marks[id] = value;
    saveMarks(runKey, marks);
    paintCard(card, marks[id]);
    refreshCounter();
  };

  const tabs = h("nav", { class: "tabs", "aria-label": "Training views" },
    FILTERS.map(([key, label, help]) => h("a", {
      class: `tab${key === filter ? " active" : ""}`, href: `#/training?filter=${key}`, title: help, dataset: { filter: key },
    }, `${label} (${viewCount(key, first.counts)})`)));

  const search = h("input", {
    type: "search", placeholder: "Filter by id…", value: q, "aria-label": "Filter by id",
    onchange: (event) => { location.hash = `#/training?filter=${filter}&q=${encodeURIComponent(event.target.value)}`; },
  });
  const exportBar = h("div", { class: "marks" },
    counter,
    h("button", { class: "button primary", type: "button", id: "export-reject", title: "One training id per line. Quarantine them (moved, never deleted, undoable) with:\nnovelty curate --run RUN --list reject.txt --quarantine QDIR", onclick: () => downloadList(markedIds(marks, "reject"), "reject.txt") }, "Export rejected (.txt)"),
    h("button", { class: "button", type: "button", id: "export-keep", onclick: () => downloadList(markedIds(marks, "keep"), "keep.txt") }, "Export kept (.txt)"),
    source.moreLike ? likeButton : "",
    h("button", { class: "button subtle", type: "button", onclick: () => {
      if (!confirm("Forget every keep / reject mark for this run?")) return;
      for (const id of Object.keys(marks)) delete marks[id];
      saveMarks(runKey, marks);
      root.querySelectorAll(".tcard").forEach((card) => paintCard(card, undefined));
      refreshCounter();
    } }, "Clear marks"));

  const rule = summary.statistics?.curation?.outlier_rule;
  const help = FILTERS.find(([key]) => key === filter)[2]
    + (filter === "outliers" && rule ? ` ${viewCount("outliers", first.counts)} flagged, by this rule: ${rule}; highest score first.` : "");
  const grid = h("div", { class: "training-grid" });
  const more = h("button", { class: "button", type: "button" }, "Show more");
  const footer = h("p", { class: "paging" });
  const addItems = (page) => {
    appendCards(grid, page.items, filter, marks, setMark, pick);
    offset += page.items.length;
    footer.replaceChildren(`${offset} of ${page.total} shown `, offset < page.total ? more : "");
  };
  likeButton.addEventListener("click", async () => {
    likeButton.disabled = true;
    try {
      const ranked = await source.moreLike([...examples]);
      grid.replaceChildren();
      appendCards(grid, ranked.items, "more-like", marks, setMark, pick);
      footer.replaceChildren(`More like ${countOf(examples.size, "picked image")}: the best ${ranked.items.length} of ${ranked.total}, most alike first; mark them keep or reject and export the list.`);
    } catch (error) {
      grid.replaceChildren(statusMessage(error.message));
    }
    likeButton.disabled = !examples.size;
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    addItems(await source.training({ filter, q, offset, limit: PAGE }));
    more.disabled = false;
  });

  fill(root, 
    h("div", { class: "toolbar" }, h("h2", null, "Training set"), tabs),
    h("div", { class: "toolbar" }, search, exportBar),
    h("p", { class: "hint" }, help, summary.has_curation ? "" : " (This run has no training.csv yet: only retrieval counts and exact duplicates are known.)"),
    grid, footer);
  if (!first.items.length) grid.append(statusMessage("Nothing here."));
  addItems(first);
}

function appendCards(grid, items, filter, marks, setMark, pick) {
  let groupBox = grid.lastElementChild && grid.lastElementChild.classList.contains("dup-group") ? grid.lastElementChild : null;
  for (const row of items) {
    const card = trainingCard(row, marks, setMark, pick);
    if (filter === "duplicates" && row.duplicate_group) {
      if (!groupBox || groupBox.dataset.group !== row.duplicate_group) {
        groupBox = h("section", { class: "dup-group", dataset: { group: row.duplicate_group } },
          h("h4", null, `Duplicate group · ${countOf(row.duplicate_count, "image")}`));
        grid.append(groupBox);
      }
      groupBox.append(card);
    } else {
      grid.append(card);
    }
  }
}

function trainingCard(row, marks, setMark, pick) {
  const facts = [
    row.outlier_score !== null ? h("span", { title: "Outlier score: higher = further from the rest of the training set" }, `outlier ${fmtSimilarity(row.outlier_score)}`) : null,
    h("span", { title: `Times retrieved as a neighbour: ${Object.entries(row.retrieved).map(([l, n]) => `${l} ${n}`).join(", ")}` }, `retrieved ×${row.times_retrieved}`),
    row.duplicate_count > 1 ? h("span", { title: "Members of its duplicate group" }, `${row.duplicate_count} copies`) : null,
    row.rank ? h("span", { class: "like-rank", title: "More like these: rank and score (robust z, mean over layers)" }, `#${row.rank} · ${row.score.toFixed(2)}`) : null,
  ];
  const badges = [
    row.is_outlier ? h("span", { class: "badge badge-warn" }, "outlier") : null,
    row.is_hub ? h("span", { class: "badge badge-neutral", title: "Near to many other training images: it answers many queries without resembling them" }, "hub") : null,
    row.is_retrieval_hub ? h("span", { class: "badge badge-neutral", title: "Retrieved by the generated samples far more often than chance" }, "retrieval hub") : null,
    ...row.flags.map((flag) => h("span", { class: "badge badge-bad" }, flag.replaceAll("_", " "))),
  ];
  const card = h("div", { class: "tcard", dataset: { id: row.id } });
  card.append(
    h("button", { class: "tile-image", type: "button", title: `${row.id}: click to enlarge`, onclick: () => openViewer({ src: source.imageUrl("training", row.id), title: `Training image ${row.id}` }) },
      h("img", { src: source.imageUrl("training", row.id, true), alt: `training image ${row.id}`, loading: "lazy", decoding: "async", width: 96, height: 96 })),
    h("div", { class: "tile-id", title: row.id }, row.id),
    h("div", { class: "facts" }, facts),
    h("div", { class: "badges" }, badges),
    h("div", { class: "mark-buttons", role: "group", "aria-label": `Mark ${row.id}` },
      h("button", { type: "button", class: "mark keep", onclick: () => setMark(row.id, "keep", card) }, "Keep"),
      h("button", { type: "button", class: "mark reject", onclick: () => setMark(row.id, "reject", card) }, "Reject"),
      source.moreLike ? h("button", { type: "button", class: "mark like", "aria-pressed": "false", title: "Pick as an example for More like these", onclick: () => pick(row.id, card) }, "Like") : ""));
  paintCard(card, marks[row.id]);
  return card;
}

function paintCard(card, mark) {
  card.classList.toggle("marked-keep", mark === "keep");
  card.classList.toggle("marked-reject", mark === "reject");
  card.querySelector(".mark.keep").setAttribute("aria-pressed", String(mark === "keep"));
  card.querySelector(".mark.reject").setAttribute("aria-pressed", String(mark === "reject"));
}
