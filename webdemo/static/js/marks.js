// Keep / reject marks on training images, kept in this browser (localStorage) until exported.
// The exported list has one training id per line: the input of `novelty curate --list`.

const PREFIX = "novelty-marks:";

export function loadMarks(runKey) {
  try {
    const stored = JSON.parse(localStorage.getItem(PREFIX + runKey) || "{}");
    return stored && typeof stored === "object" ? stored : {};
  } catch {
    return {};
  }
}

export function saveMarks(runKey, marks) {
  try {
    localStorage.setItem(PREFIX + runKey, JSON.stringify(marks));
  } catch {
    // storage full or disabled: marks live until the page is closed
  }
}

export function markedIds(marks, which) {
  return Object.keys(marks).filter((id) => marks[id] === which).sort();
}

export function downloadList(ids, filename) {
  const blob = new Blob([ids.length ? `${ids.join("\n")}\n` : ""], { type: "text/plain" });
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
