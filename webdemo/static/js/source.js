// Where the data comes from: the JSON API of `novelty serve`, or the data inlined by
// `novelty export` (window.NOVELTY_DATA, so the page also works from file:// with no server).
import { encodeId } from "./dom.js";

const THUMB = 128;

async function getJSON(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new Error(`cannot reach the server (${error.message}); is \`novelty serve\` still running?`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

function serverSource() {
  let samples = null;
  let summary = null;
  return {
    mode: "server",
    canQuery: true,
    samples: () => (samples = samples || getJSON("api/samples")),
    sample: (id) => getJSON(`api/samples/${encodeId(id)}`),
    neighbours: (id, layer) =>
      getJSON(`api/samples/${encodeId(id)}/neighbors?layer=${encodeURIComponent(layer)}`),
    training: (params) => {
      const query = new URLSearchParams();
      for (const [key, value] of Object.entries(params)) if (value !== "" && value != null) query.set(key, value);
      return getJSON(`api/training?${query}`);
    },
    summary: () => (summary = summary || getJSON("api/summary")),
    query: (file) => {
      const form = new FormData();
      form.append("file", file);
      return getJSON("api/query", { method: "POST", body: form });
    },
    generate: (file) => {
      const form = new FormData();
      form.append("file", file);
      return getJSON("api/query/generate", { method: "POST", body: form });
    },
    moreLike: (examples, limit = 200) => getJSON("api/training/more-like", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ examples, limit }),
    }),
    imageUrl: (kind, id, thumb = false) => `api/images/${kind}/${encodeId(id)}${thumb ? `?size=${THUMB}` : ""}`,
    plotUrl: (name) => `api/plots/${encodeURIComponent(name)}`,
  };
}

const TRAINING_FILTERS = {
  all: () => true,
  outliers: (r) => r.is_outlier,
  duplicates: (r) => r.duplicate_group !== null,
  hubs: (r) => r.is_hub || r.is_retrieval_hub,
  flagged: (r) => r.flags.length > 0,
};

const TRAINING_SORTS = {
  outlier_score: (a, b) => (b.outlier_score ?? -Infinity) - (a.outlier_score ?? -Infinity),
  times_retrieved: (a, b) => b.times_retrieved - a.times_retrieved,
  duplicate_group: (a, b) => String(a.duplicate_group).localeCompare(String(b.duplicate_group)),
};

function staticSource(data) {
  const byId = new Map(data.samples.map((record, index) => [record.id, index]));
  const fail = (message) => Promise.reject(new Error(message));
  return {
    mode: "static",
    canQuery: false,
    samples: () => Promise.resolve({
      total: data.samples.length, items: data.samples, layers: data.summary.layers.map((l) => l.layer),
      verdicts: data.summary.verdicts,
    }),
    sample: (id) => {
      const index = byId.get(id);
      if (index === undefined) return fail(`unknown sample id: '${id}'`);
      const ids = data.samples;
      return Promise.resolve({
        ...ids[index], index,
        previous: index > 0 ? ids[index - 1].id : null,
        next: index + 1 < ids.length ? ids[index + 1].id : null,
      });
    },
    neighbours: (id, layer) => {
      const lists = data.neighbours[id];
      if (!lists || !lists[layer]) return fail(`no neighbours for '${id}' at ${layer}`);
      return Promise.resolve({ sample: id, ...lists[layer] });
    },
    training: ({ filter = "all", flag = "", q = "", offset = 0, limit = 500 }) => {
      const rows = data.training;
      const counts = data.summary.training_counts;  // of the whole set: the export keeps only the rows it shows
      let items = rows.filter(TRAINING_FILTERS[filter]);
      if (flag) items = items.filter((r) => r.flags.includes(flag));
      if (q) items = items.filter((r) => r.id.toLowerCase().includes(q.toLowerCase()));
      const sort = { outliers: "outlier_score", duplicates: "duplicate_group", hubs: "times_retrieved" }[filter];
      if (sort) items = [...items].sort(TRAINING_SORTS[sort]);
      const flags = [...new Set(rows.flatMap((r) => r.flags))].sort();
      return Promise.resolve({ total: items.length, offset, items: items.slice(offset, offset + limit), counts, flags });
    },
    summary: () => Promise.resolve(data.summary),
    query: () => fail("queries need the server: run `novelty serve RUN`"),
    generate: () => fail("generating needs the server: run `novelty serve RUN`"),
    imageUrl: (kind, id, thumb = false) => {
      const entry = (data.images[kind] || {})[id];
      return entry ? entry[thumb ? 1 : 0] : "";
    },
    plotUrl: (name) => data.plots[name] || "",
  };
}

export const source = typeof window.NOVELTY_DATA === "object" && window.NOVELTY_DATA
  ? staticSource(window.NOVELTY_DATA)
  : serverSource();
