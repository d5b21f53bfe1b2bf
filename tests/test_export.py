"""`novelty export`: a static site of the gallery and neighbour views (opened in Chromium by
tests/test_webdemo_browser.py; checked here without a browser)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from PIL import Image
from webhelpers import LAYERS, make_run

from novelty.cli import main as cli
from novelty.errors import NoveltyError
from webdemo.export import MARKER, bundle_modules, export_site, static_dir


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    fixture = make_run(base)
    index = export_site(fixture.root, base / "site", thumb_size=16, progress=False)
    return fixture, index.parent


def read_data(site):
    text = (site / "data.js").read_text(encoding="utf-8")
    prefix = "window.NOVELTY_DATA = "
    assert text.startswith(prefix) and text.rstrip().endswith(";")
    return json.loads(text[len(prefix):].rstrip().rstrip(";"))


def test_the_site_inlines_its_data_and_loads_no_modules(exported):
    fixture, site = exported
    page = (site / "index.html").read_text(encoding="utf-8")
    assert '<script src="data.js"></script><script src="app.js"></script>' in page
    assert 'type="module"' not in page and "<!-- scripts -->" not in page
    script = (site / "app.js").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|export)\b", script, re.M)
    assert "window.NOVELTY_DATA" in script  # the page reads the inlined data, no fetch() of JSON
    data = read_data(site)
    assert data["static"] is True
    assert [s["id"] for s in data["samples"]] == fixture.generated_ids
    assert data["summary"]["counts"]["generated"] == 30
    for layer in LAYERS:
        lists = data["neighbours"]["g000.png"][layer]
        assert lists["k"] == 24 and lists["groups"][0]["id"] == "t003.png"
        assert sum(tile["count"] for tile in lists["groups"]) == 24
    assert data["neighbours"]["g001.png"]["block5_pool"]["groups"][0]["count"] == 2


def test_every_image_the_page_shows_is_copied(exported):
    fixture, site = exported
    data = read_data(site)
    shown = {i for lists in data["neighbours"].values() for record in lists.values()
             for tile in record["groups"] for i in tile["ids"]}
    assert shown <= set(data["images"]["training"])
    assert set(data["images"]["generated"]) == set(fixture.generated_ids)
    for kind, folder in (("generated", fixture.generated_dir), ("training", fixture.train_dir)):
        for ident, (full, thumb) in data["images"][kind].items():
            assert (site / full).read_bytes() == (folder / ident).read_bytes(), ident
            assert Image.open(site / thumb).size == (16, 16)  # 32 px images, thumbnails of 16
            assert not full.startswith("/") and ".." not in full
    assert {row["id"] for row in data["training"]} >= {"outlier.png", "blank.png", "dup/a.png"}
    assert set(data["plots"]) == {"similarity.png"} and (site / data["plots"]["similarity.png"]).is_file()


def test_export_never_overwrites_a_folder_it_did_not_write(exported, tmp_path):
    fixture, site = exported
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(NoveltyError, match="not empty"):
        export_site(fixture.root, busy, progress=False)
    assert (busy / "notes.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1
    assert (site / MARKER).is_file()
    export_site(fixture.root, site, thumb_size=16, progress=False)  # an earlier export is refreshed
    with pytest.raises(NoveltyError, match="not a run folder"):
        export_site(tmp_path, tmp_path / "out", progress=False)


def test_cli_export_prints_the_page_address(tmp_path):
    fixture = make_run(tmp_path, n_generated=5, n_training=30, verdicts=False, curation=False, features=False)
    result = CliRunner().invoke(cli, ["export", str(fixture.root), "--out", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    assert "file://" in result.output and (tmp_path / "site" / "index.html").is_file()
    assert read_data(tmp_path / "site")["summary"]["has_verdicts"] is False
    bad = CliRunner().invoke(cli, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 1 and "Error:" in bad.output and "Traceback" not in bad.output


def test_bundle_keeps_modules_apart_and_refuses_what_it_cannot_handle(tmp_path):
    (tmp_path / "a.js").write_text('const secret = 1;\nexport function one() { return secret; }\n')
    (tmp_path / "main.js").write_text('import { one } from "./a.js";\nconst secret = 2;\nconsole.log(one() + secret);\n')
    bundle = bundle_modules(tmp_path)
    assert bundle.index("// ---- a.js") < bundle.index("// ---- main.js")
    assert "const { one } = __module_a;" in bundle and "return { one };" in bundle
    assert bundle.count("const secret") == 2  # each in its own function scope
    (tmp_path / "main.js").write_text("export default 1;\n")
    with pytest.raises(NoveltyError, match="unsupported module syntax"):
        bundle_modules(tmp_path)
    (tmp_path / "main.js").write_text('import { x } from "./missing.js";\n')
    with pytest.raises(NoveltyError, match="missing"):
        bundle_modules(tmp_path)
    (tmp_path / "main.js").write_text('import { one } from "./a.js";\n')
    (tmp_path / "a.js").write_text('import { two } from "./main.js";\nexport function one() {}\n')
    with pytest.raises(NoveltyError, match="circular"):
        bundle_modules(tmp_path)


def test_the_real_frontend_bundles(tmp_path):
    bundle = bundle_modules(static_dir() / "js")
    for module in ("dom", "format", "source", "tiles", "gallery", "sample", "training", "summary", "query"):
        assert f"const __module_{module} = " in bundle
    assert bundle.rstrip().endswith("})();")
