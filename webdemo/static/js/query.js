// Upload any image and see its nearest training images at every layer; in a conditional (pix2pix)
// run, upload an input and see the run's generator's output and the output's nearest training images.
import { fill, h, statusMessage } from "./dom.js";
import { fmtSeconds } from "./format.js";
import { source } from "./source.js";
import { neighbourSection } from "./tiles.js";

export async function renderQuery(root) {
  if (!source.canQuery) {
    fill(root, h("h2", null, "Query"),
      statusMessage("This is a static export: queries need the server. Run `novelty serve RUN` and open it instead."));
    return;
  }
  const conditional = (await source.summary()).run.conditional;
  const results = h("div", { class: "query-results", "aria-live": "polite" });
  const output = h("img", { class: "sample-large", id: "generated-output", alt: "the generator's output", hidden: true });
  const preview = h("img", { class: "sample-large", alt: "your image", hidden: true });
  const input = h("input", { type: "file", id: "query-file", name: "file", accept: "image/png,image/jpeg,image/gif,image/bmp,image/tiff,image/webp" });
  const run = async (file) => {
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    output.hidden = true;
    results.replaceChildren(statusMessage(conditional
      ? "Generating and embedding the output… (the first upload loads the generator and the feature extractor)"
      : "Embedding your image… (the first query loads the feature extractor; this can take a while)"));
    try {
      const answer = await (conditional ? source.generate(file) : source.query(file));
      if (conditional) {
        output.src = answer.output;
        output.hidden = false;
      }
      results.replaceChildren(
        h("p", { class: "hint" }, `${answer.filename || "image"} · ${answer.width}×${answer.height} px · answered in ${fmtSeconds(answer.seconds)}`,
          conditional ? ` (generating ${fmtSeconds(answer.generate_seconds)}); neighbours of the output` : ""),
        ...Object.values(answer.layers).map(neighbourSection));
    } catch (error) {
      results.replaceChildren(statusMessage(error.message, "error"));
    }
  };
  input.addEventListener("change", () => run(input.files[0]));
  const drop = h("label", { class: "dropzone", for: "query-file" },
    h("b", null, "Choose an image"), " or drop it here (PNG, JPEG, GIF, BMP, TIFF or WebP).", input);
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    run(event.dataTransfer.files[0]);
  });
  fill(root,
    conditional ? h("h2", null, "Generate from your own input") : h("h2", null, "Query with your own image"),
    h("p", { class: "hint" }, conditional
      ? "The run's pix2pix generator translates your input; its output is embedded like the run's images and compared with every training target at each layer. Nothing is stored."
      : "Is this picture in the training set, or close to something that is? The image is embedded like the run's images and compared with every training image at each layer. Nothing is stored."),
    h("div", { class: "sample-head" }, drop, preview, output),
    results);
}
