"""A static copy of the web demo: the gallery and neighbour views of a run, opened from file://.

``export_site(run, out)`` writes ``out/index.html`` with the web demo's own frontend, the run's
records inlined as a script (``data.js`` sets ``window.NOVELTY_DATA``: browsers refuse ``fetch()`` of
JSON from file://) and the images it shows copied beside it (thumbnails for large ones). No server,
no network: the folder can be zipped, mailed or put on any static host.

The frontend is written as ES modules for the server; browsers also refuse module imports from
file://, so :func:`bundle_modules` joins them into one classic script, each module in its own
function scope. It supports the subset the frontend uses: ``import { a, b } from "./x.js";`` and
``export function|const|let|class name``; anything else is an error, caught by the export tests.

The frontend files are found through the ``webdemo`` package's location without importing it
(``novelty`` never imports ``webdemo``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import write_json, write_text
from novelty.run.browse import RunView
from novelty.run.imagefiles import thumbnail_png
from webdemo.paths import STATIC_DIR

MARKER = ".novelty-export"  # an export folder is recognised by this file, so it can be refreshed
SCRIPTS = re.compile(r"<!-- scripts -->.*?<!-- /scripts -->", re.S)
IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"(\./[\w./-]+\.js)";[ \t]*$', re.M)
EXPORT = re.compile(r"^export\s+((?:async\s+)?function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)
SAFE_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")


def static_dir() -> Path:
    """The web demo's frontend folder (``webdemo/static``), checked to be complete."""
    if not (STATIC_DIR / "index.html").is_file():
        raise NoveltyError(f"the web demo frontend is incomplete: no index.html in {STATIC_DIR}")
    return STATIC_DIR


def bundle_modules(js_dir: str | os.PathLike, entry: str = "main.js") -> str:
    """The ES modules under ``js_dir`` reachable from ``entry``, as one classic script."""
    js_dir = Path(js_dir)
    order: list[str] = []
    sources: dict[str, str] = {}
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in sources:
            return
        if name in visiting:
            raise NoveltyError(f"circular import involving {name} in {js_dir}")
        visiting.add(name)
        path = js_dir / name
        if not path.is_file():
            raise NoveltyError(f"module {name} imported but missing from {js_dir}")
        text = path.read_text(encoding="utf-8")
        for _names, target in IMPORT.findall(text):
            visit(os.path.normpath(target[2:]))
        visiting.discard(name)
        sources[name] = text
        order.append(name)

    visit(entry)
    parts = ['"use strict";', "(() => {"]
    for name in order:
        text = sources[name]
        body = IMPORT.sub(lambda m: f"const {{{m.group(1)}}} = {_module_var(m.group(2)[2:])};", text)
        leftover = re.search(r"^\s*(import|export)\b(?!\s+((async\s+)?function|const|let|class)\b)", body, re.M)
        if leftover:
            raise NoveltyError(f"{name}: unsupported module syntax for the static bundle: "
                               f"{body[leftover.start():].splitlines()[0].strip()!r}")
        names = [m.group(2) for m in EXPORT.finditer(body)]
        body = EXPORT.sub(lambda m: f"{m.group(1)} {m.group(2)}", body)
        parts.append(f"// ---- {name}")
        parts.append(f"const {_module_var(name)} = (() => {{\n{body}\nreturn {{ {', '.join(names)} }};\n}})();")
    parts.append("})();")
    return "\n".join(parts) + "\n"


def _module_var(name: str) -> str:
    return "__module_" + re.sub(r"\W", "_", os.path.normpath(name).removesuffix(".js"))


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NoveltyError(f"--out must be a folder, received a file: {out}")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise NoveltyError(f"--out folder is not empty and holds no earlier export: {out}; "
                           "choose a new or empty folder")


def _copy_images(view: RunView, kind: str, ids: list[str], out: Path, thumb_size: int,
                 progress: bool) -> dict[str, list[str]]:
    """Copy images to ``out/images/<kind>/<n><suffix>``: ``{id: [full, thumbnail]}`` relative URLs."""
    from tqdm.auto import tqdm

    urls: dict[str, list[str]] = {}
    folder = out / "images" / kind
    for n, ident in enumerate(tqdm(ids, desc=f"copying {kind} images", unit="img", disable=not progress)):
        source = view.image_path(kind, ident)
        if source is None:
            continue  # listed by the run but gone from disk: the page shows an empty tile
        suffix = source.suffix.lower() if SAFE_SUFFIX.match(source.suffix.lower()) else ".img"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / f"{n}{suffix}")  # a copy of a user's file: no fsync per image
        thumb = thumbnail_png(source, thumb_size)
        thumb_url = f"images/{kind}/{n}{suffix}"
        if thumb is not None:
            (folder / "thumbs").mkdir(exist_ok=True)
            (folder / "thumbs" / f"{n}.png").write_bytes(thumb)
            thumb_url = f"images/{kind}/thumbs/{n}.png"
        urls[ident] = [f"images/{kind}/{n}{suffix}", thumb_url]
    return urls


def export_data(view: RunView) -> dict[str, Any]:
    """The records the static page shows: samples, neighbour lists per layer, training rows, summary."""
    neighbours = {}
    for ident in view.sample_ids:
        lists = {}
        for layer in view.layers:
            record = view.neighbour_list(ident, layer)
            del record["sample"], record["neighbors"]  # the page shows the tiles ("groups") only
            lists[layer] = record
        neighbours[ident] = lists
    shown = {i for lists in neighbours.values() for record in lists.values() for tile in record["groups"]
             for i in tile["ids"]}
    shown.update(i for mode in ((view.summary_data or {}).get("modes") or {}).get("modes", [])
                 for i in mode.get("training_examples", []))  # the Modes view's typical training images
    training = [row for row in view.training_rows()
                if row["id"] in shown or row["is_outlier"] or row["duplicate_group"] or row["flags"]
                or row["is_hub"]]
    return {"static": True, "samples": view.sample_list(), "neighbours": neighbours,
            "training": training, "summary": view.summary()}


def export_site(run: str | os.PathLike, out: str | os.PathLike, *, thumb_size: int = defaults.THUMB_SIZE,
                progress: bool = True) -> Path:
    """Write the static site of ``run`` into ``out``; returns the path of its ``index.html``."""
    view = RunView.load(run)
    out = Path(out)
    _check_out(out)
    static = static_dir()
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / MARKER, "written by `novelty export`; the folder may be refreshed by it\n")

    data = export_data(view)
    training_ids = [row["id"] for row in data["training"]]
    data["images"] = {
        "generated": _copy_images(view, "generated", view.sample_ids, out, thumb_size, progress),
        "training": _copy_images(view, "training", training_ids, out, thumb_size, progress),
    }
    for kind in ("input", "truth"):  # a conditional run's inputs and ground truths
        ids = sorted({s["conditional"][kind] for s in data["samples"] if (s["conditional"] or {}).get(kind)})
        if ids:
            data["images"][kind] = _copy_images(view, kind, ids, out, thumb_size, progress)
    data["plots"] = {}
    for name in view.plots:
        path = view.plot_path(name)
        if path is not None:
            target = f"plots/{len(data['plots'])}.png"
            (out / "plots").mkdir(exist_ok=True)
            shutil.copyfile(path, out / target)
            data["plots"][name] = target

    payload = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    write_text(out / "data.js", f"window.NOVELTY_DATA = {payload};\n")
    write_text(out / "app.js", bundle_modules(static / "js"))
    shutil.copyfile(static / "style.css", out / "style.css")
    page = (static / "index.html").read_text(encoding="utf-8")
    if not SCRIPTS.search(page):
        raise NoveltyError(f"{static / 'index.html'} lacks the <!-- scripts --> markers the export replaces")
    page = SCRIPTS.sub('<script src="data.js"></script><script src="app.js"></script>', page)
    write_text(out / "index.html", page)
    write_json(out / "export.json", {"run": str(Path(run).resolve()), "samples": len(view.sample_ids),
                                     "training_images": len(training_ids)})
    for name in ("data.js", "app.js", "index.html", "export.json", MARKER):
        (out / name).chmod(0o644)  # atomic writes start private (0600); a site is meant to be read
    return out / "index.html"
