"""End to end in real headless Chromium (Debian's, driven by Playwright) against a real uvicorn server
on 127.0.0.1, and against the static export opened from file://. Screenshots go to
test-artifacts/webdemo/. Skips when /usr/bin/chromium is missing."""

from __future__ import annotations

import re

import httpx
import pytest
from webhelpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    StubExtractor,
    artifact_dir,
    chromium_missing_reason,
    live_server,
    make_run,
)

from novelty.search.query import QueryIndex
from webdemo import Settings, create_app

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(chromium_missing_reason() is not None, reason=chromium_missing_reason() or "")]

SIMILARITY = re.compile(r"^[01]\.\d{3}$")
PERCENT = re.compile(r"^\d{1,3}(\.\d)?%$")
TIMEOUT = 15_000  # ms


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def server(fixture_run, tmp_path_factory):
    app = create_app(Settings(run=fixture_run.root, cache_dir=tmp_path_factory.mktemp("cache")))
    app.state.novelty.set_query_index(QueryIndex(fixture_run.root, extractor=StubExtractor()))
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots():
    return artifact_dir("webdemo")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.errors = errors
    yield page
    context.close()
    assert not errors, errors


def ready(page, view: str) -> None:
    """Wait until the current route (hash included) has rendered: after a hash-only navigation within
    the same view, the previous route's mark must not count."""
    page.wait_for_function(
        "(view) => { const app = document.getElementById('app');"
        " return app.dataset.ready === view && app.dataset.readyHash === location.hash; }", arg=view)


def check_neighbour_rows(page, k: int = 24) -> None:
    """Both layers shown and labelled, each with k neighbours as tiles (a duplicate group is one tile
    with its count), every tile with a similarity and a calibrated score, every image loaded."""
    sections = page.locator("section.layer")
    assert sections.count() == 2
    labels = [sections.nth(i).locator("h3").inner_text() for i in range(2)]
    assert "block1_pool" in labels[0] and "colour and texture" in labels[0]
    assert "block5_pool" in labels[1] and "shape" in labels[1]
    for i in range(2):
        tiles = sections.nth(i).locator(".tile")
        grouped = sum(int(text.lstrip("×")) - 1 for text in tiles.locator(".dup-count").all_inner_texts())
        assert tiles.count() + grouped == k
        similarities = tiles.locator(".similarity").all_inner_texts()
        calibrated = tiles.locator(".calibrated").all_inner_texts()
        assert len(similarities) == len(calibrated) == tiles.count()
        assert all(SIMILARITY.match(text) for text in similarities), similarities
        assert all(PERCENT.match(text) for text in calibrated), calibrated
        values = [float(text) for text in similarities]
        assert values == sorted(values, reverse=True)
    page.wait_for_function("() => [...document.querySelectorAll('section.layer img')]"
                           ".every(img => img.complete && img.naturalWidth > 0)")


def test_gallery_click_shows_24_scored_neighbours_per_layer(page, server, fixture_run, shots):
    page.goto(server + "/")
    ready(page, "gallery")
    assert page.locator(".gallery .card").count() == 30
    page.wait_for_function("() => document.querySelector('.gallery img').naturalWidth > 0")
    shown = page.locator(".gallery .card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    ranked = [r["id"] for r in httpx.get(server + "/api/samples", params={"sort": "novelty"}).json()["items"]]
    assert shown == ranked  # most novel first by default, as the API sorts
    assert page.locator(".card[data-id='g000.png'] .card-scores").inner_text().startswith("copy p ")
    page.screenshot(path=shots / "gallery.png")
    plain = fixture_run.plain_sample()
    page.locator(f".card[data-id='{plain}']").click()
    ready(page, "sample")
    assert plain in page.locator(".sample-info h2").inner_text()
    check_neighbour_rows(page)
    assert page.locator("section.layer .tile").count() == 48  # 24 distinct tiles per layer
    assert "Layer agreement" in page.locator(".agreement").inner_text()
    assert page.locator(".sample-info .badge").inner_text() in ("novel", "borderline")
    assert "Copy p-value" in page.locator(".headline").inner_text()
    page.screenshot(path=shots / "sample.png", full_page=True)

    page.goto(server + "/#/?verdict=copy")
    ready(page, "gallery")
    assert sorted(page.locator(".gallery .card").evaluate_all("cards => cards.map(c => c.dataset.id)")) == \
        ["g000.png", "g001.png"]


def test_keyboard_moves_between_samples(page, server):
    page.goto(server + "/")
    ready(page, "gallery")
    order = page.locator(".gallery .card").evaluate_all("cards => cards.map(c => c.dataset.id)")
    page.locator(f".card[data-id='{order[0]}']").click()
    ready(page, "sample")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f".sample-view[data-sample='{order[1]}']")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f".sample-view[data-sample='{order[2]}']")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(f".sample-view[data-sample='{order[1]}']")
    page.keyboard.press("Escape")
    ready(page, "gallery")


def test_duplicate_neighbours_are_one_tile_with_a_count(page, server, shots):
    page.goto(server + "/#/sample/g001.png")
    ready(page, "sample")
    shape = page.locator("section.layer[data-layer='block5_pool']")
    assert shape.locator(".tile").count() == 23
    assert shape.locator(".dup-count").all_inner_texts() == ["×2"]
    assert page.locator(".sample-info .badge").inner_text() == "copy"
    page.screenshot(path=shots / "duplicates.png", full_page=True)


def test_the_aligned_pixel_match_says_how_the_sample_lines_up(page, server, shots):
    page.goto(server + "/#/sample/g002.png")
    ready(page, "sample")
    assert page.locator(".scores-table tr.aligned-row td.num").first.inner_text() == "0.930"
    line = page.locator(".sample-info p.aligned").inner_text()
    assert "The sample looks like a close-up of training image blank.png, mirrored: a part of it keeping 80% " \
           "of each side, enlarged (aligned pixel match 0.930, above 0.900" in line
    thumb = page.locator(".sample-info p.aligned img.aligned-thumb")
    assert thumb.get_attribute("alt") == "training image blank.png"  # g002's nearest at block5_pool
    page.wait_for_function("() => document.querySelector('img.aligned-thumb').naturalWidth > 0")
    page.screenshot(path=shots / "aligned.png", full_page=True)


def test_a_weak_aligned_match_is_not_worded_as_a_crop(page, server, fixture_run):
    page.goto(server + f"/#/sample/{fixture_run.plain_sample()}")
    ready(page, "sample")
    line = page.locator(".sample-info p.aligned").inner_text()  # aligned score 0.3
    assert "no sign of a crop or rescale" in line and "0.300" in line
    assert "crop of" not in line and "close-up" not in line
    assert page.locator(".sample-info img.aligned-thumb").count() == 0
    page.goto(server + "/#/sample/g000.png")
    ready(page, "sample")
    assert "Identical to training image t003.png (same file)" in page.locator(".sample-info p.identical").inner_text()


def _position(page) -> str:
    return page.locator(".sample-nav .position").inner_text().split(" · ")[0]


def test_a_samples_position_is_one_order_however_the_page_was_reached(page, server):
    for gallery in ("/", "/#/?verdict=copy", "/#/?sort=id"):
        page.goto(server + gallery)
        ready(page, "gallery")
        cards = page.locator(".gallery .card")
        shown = cards.count()
        pick = min(2, shown - 1)
        chosen = cards.nth(pick).get_attribute("data-id")
        cards.nth(pick).click()
        ready(page, "sample")
        clicked = _position(page)
        assert clicked == f"{pick + 1} of {shown}"
        page.reload()  # the same address, reached afresh
        ready(page, "sample")
        assert _position(page) == clicked
        if gallery == "/":  # a bare link to the sample: the gallery's default order
            page.goto(server + f"/#/sample/{chosen}")
            ready(page, "sample")
            assert _position(page) == clicked
    page.goto(server + "/#/sample/g005.png?sort=id")
    ready(page, "sample")
    assert _position(page) == "6 of 30" and "sample id" in page.locator(".sample-nav .position").inner_text()


def test_training_and_summary_counts_agree_with_their_units(page, server):
    page.goto(server + "/#/training?filter=duplicates")
    ready(page, "training")
    tabs = dict(zip(page.locator(".tabs .tab").evaluate_all("tabs => tabs.map(t => t.dataset.filter)"),
                    page.locator(".tabs .tab").all_inner_texts(), strict=True))
    assert tabs["duplicates"] == "Duplicate groups (1 group, 2 images)"
    assert page.locator(".dup-group h4").all_inner_texts() == ["Duplicate group · 2 images"]
    hubs = re.fullmatch(r"Hubs \((\d+) images?\)", tabs["hubs"])
    assert hubs, tabs["hubs"]
    page.goto(server + "/#/summary")
    ready(page, "summary")
    rows = dict(page.locator("table.kv tbody tr").evaluate_all(
        "rows => rows.map(r => [r.querySelector('th').innerText, r.querySelector('td').innerText])"))
    assert rows["Duplicate groups (training)"] == "1 group, 2 images"
    assert rows["Hubs"].startswith(f"{hubs.group(1)} image")  # the tab's number, the same unit
    assert rows["Outliers"] == "1 image" and tabs["outliers"] == "Outliers (1 image)"


def test_the_outliers_tab_says_how_many_and_by_which_rule(page, server):
    page.goto(server + "/#/training")  # the Training view opens on the outliers
    ready(page, "training")
    hint = page.locator("p.hint").first.inner_text()
    assert "1 image flagged, by this rule: max(z_knn, (z_knn + z_T2) / 2) above 2.5, where z_knn = largest " \
           "robust z of log distance to the k-th nearest distinct training image, over layers and k = 5, and " \
           "z_T2 = robust z of log Hotelling T^2" in hint, hint
    page.goto(server + "/#/training?filter=duplicates")
    ready(page, "training")
    assert "by this rule" not in page.locator("p.hint").first.inner_text()


def test_more_like_these_ranks_from_picked_images_and_result_can_be_marked(page, server):
    page.goto(server + "/#/training?filter=duplicates")
    ready(page, "training")
    assert page.locator("#more-like").is_disabled()
    page.locator('.tcard[data-id="dup/a.png"] .mark.like').click()
    assert page.locator("#more-like").inner_text() == "More like these (1)"
    page.locator("#more-like").click()
    page.wait_for_selector(".like-rank")
    cards = page.locator(".training-grid .tcard")
    ids = cards.evaluate_all("cards => cards.map(c => c.dataset.id)")
    assert ids[0] == "dup/b.png" and "dup/a.png" not in ids
    assert cards.first.locator(".like-rank").inner_text().startswith("#1 ")
    cards.first.locator(".mark.reject").click()
    assert "1 rejected" in page.locator(".marks-count").inner_text()
    page.evaluate("localStorage.clear()")

def test_the_training_view_opens_on_a_non_empty_view_when_nothing_is_an_outlier(page, fixture_run, tmp_path):
    import csv
    import shutil

    from webdemo.export import export_site

    run = shutil.copytree(fixture_run.root, tmp_path / "run")
    with open(run / "training.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["is_outlier"] = "false"
    with open(run / "training.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    page.goto((export_site(run, tmp_path / "site", progress=False)).resolve().as_uri() + "#/training")
    ready(page, "training")
    active = page.locator(".tabs .tab.active")
    assert active.get_attribute("data-filter") != "outliers" and page.locator(".tcard").count() > 0
    assert page.locator(".tabs .tab[data-filter=outliers]").inner_text() == "Outliers (0 images)"


def test_a_set_too_small_for_the_rate_says_so_in_the_summary_headline(page, fixture_run, tmp_path):
    import json
    import shutil

    from novelty.judge.calibration import too_small_message
    from webdemo.export import export_site

    run = shutil.copytree(fixture_run.root, tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    summary["copies"]["not_judged"] = too_small_message(40, 0.01, 0.1)
    (run / "summary.json").write_text(json.dumps(summary))
    page.goto((export_site(run, tmp_path / "site", progress=False)).resolve().as_uri() + "#/summary")
    ready(page, "summary")
    headline = page.locator(".judgement-warnings").inner_text()
    assert headline.startswith("Too few held-out images to judge at a false positive rate of 0.01")
    assert "at least 99 needed (about 990 training images at --holdout 0.1)" in headline
    # it comes before the verdict counts
    assert page.evaluate("() => !!(document.querySelector('.judgement-warnings').compareDocumentPosition("
                         "document.querySelector('.stat-cards')) & Node.DOCUMENT_POSITION_FOLLOWING)")


def test_an_approximate_search_shows_its_recall_on_the_summary(page, fixture_run, tmp_path):
    import json
    import shutil

    from webdemo.export import export_site

    run = shutil.copytree(fixture_run.root, tmp_path / "run")
    summary = json.loads((run / "summary.json").read_text())
    summary["search_index"] = {"backend": "faiss", "approximate": True, "requested": "auto", "recall_k": 24,
                               "recall_queries": 1000, "recall_at_k": 0.9871,
                               "searches": [{"kind": "hnsw_flat", "M": 32, "efSearch": 64, "recall_at_k": 0.9871}]}
    (run / "summary.json").write_text(json.dumps(summary))
    page.goto((export_site(run, tmp_path / "site", progress=False)).resolve().as_uri() + "#/summary")
    ready(page, "summary")
    assert page.locator(".stat.recall").inner_text().split() == ["0.987", "Recall@24", "(faiss", "vs", "exact)"]
    assert "faiss (hnsw_flat, M 32, efSearch 64) · recall@24 0.987 on 1000 queries" in page.locator("tr[title^='Neighbour search backend']").inner_text()


def test_query_upload_shows_nearest_training_images(page, server, fixture_run, shots):
    page.goto(server + "/#/query")
    ready(page, "query")
    page.set_input_files("#query-file", str(fixture_run.train_dir / "t003.png"))
    page.wait_for_selector("section.layer .tile")
    check_neighbour_rows(page)
    for layer in ("block1_pool", "block5_pool"):
        first = page.locator(f"section.layer[data-layer='{layer}'] .tile").first
        assert first.get_attribute("data-id") == "t003.png"
        assert first.locator(".similarity").inner_text() == "1.000"
    page.screenshot(path=shots / "query.png", full_page=True)


def test_training_curation_marks_and_exports_the_list(page, server, shots):
    from playwright.sync_api import expect  # retries until the page re-renders: no race under load

    page.goto(server + "/#/training?filter=outliers")
    ready(page, "training")
    cards = page.locator(".tcard")
    assert cards.evaluate_all("cards => cards.map(c => c.dataset.id)") == ["outlier.png"]
    cards.first.locator(".mark.reject").click()
    expect(cards.first.locator(".mark.reject")).to_have_attribute("aria-pressed", "true")
    page.goto(server + "/#/training?filter=duplicates")
    ready(page, "training")
    assert page.locator(".dup-group .tcard").count() == 2
    page.locator(".tcard[data-id='dup/b.png'] .mark.reject").click()
    page.locator(".tcard[data-id='dup/a.png'] .mark.keep").click()
    expect(page.locator(".tcard[data-id='dup/b.png'] .mark.reject")).to_have_attribute("aria-pressed", "true")
    expect(page.locator(".tcard[data-id='dup/a.png'] .mark.keep")).to_have_attribute("aria-pressed", "true")
    page.screenshot(path=shots / "training.png", full_page=True)
    with page.expect_download() as download:
        page.locator("#export-reject").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text == "dup/b.png\noutlier.png\n"
    page.reload()
    ready(page, "training")  # marks survive a reload
    expect(page.locator(".tcard[data-id='dup/a.png'] .mark.keep")).to_have_attribute("aria-pressed", "true")


def test_summary_shows_statistics_and_plots(page, server, shots):
    page.goto(server + "/#/summary")
    ready(page, "summary")
    assert "Copy rate" in page.locator(".kv").first.inner_text()
    assert "-1.250" in page.locator(".per-layer").inner_text()  # C_T per layer
    assert "a planted warning" in page.locator(".warnings").inner_text()
    page.wait_for_function("() => document.querySelector('.plots img').naturalWidth > 0")
    page.screenshot(path=shots / "summary.png", full_page=True)


def test_the_modes_view_shows_each_mode_its_images_and_shares(page, server, fixture_run, shots):
    page.goto(server + "/#/modes")
    ready(page, "modes")
    modes = page.locator(".mode")
    assert modes.count() == 3
    statuses = sorted(modes.nth(i).get_attribute("data-status") for i in range(3))
    assert statuses == ["missed", "missed", "over-produced"]  # every planted sample is in mode 1
    first = page.locator(".mode[data-mode='1']")
    assert "100%" in first.locator(".mode-bar-generated").inner_text()
    assert first.locator(".mode-thumbs").nth(0).locator("img").count() == 8  # typical training images
    assert first.locator(".mode-thumbs").nth(1).locator("a img").count() == 8  # samples, linked
    missed = page.locator(".mode[data-mode='2']")
    assert missed.locator(".mode-thumbs").nth(1).inner_text().strip().endswith("none")
    page.wait_for_function("() => [...document.querySelectorAll('.mode img')].every((i) => i.naturalWidth > 0)")
    assert "effective modes" in page.locator(".view-modes .hint").first.inner_text()
    first.locator("a").first.click()
    ready(page, "sample")
    page.goto(server + "/#/modes")
    ready(page, "modes")
    page.screenshot(path=shots / "modes.png", full_page=True)


def test_api_docs_render_offline(page, server, shots):
    page.goto(server + "/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    assert "/api/samples/{sample_id}/neighbors" in page.locator(".swagger-ui").inner_text()
    page.screenshot(path=shots / "docs.png")


def test_static_export_opens_from_file_without_a_server(page, fixture_run, tmp_path, shots):
    from webdemo.export import export_site

    index = export_site(fixture_run.root, tmp_path / "site", progress=False)
    page.goto(index.resolve().as_uri())
    ready(page, "gallery")
    assert page.locator(".gallery .card").count() == 30
    assert page.locator("[data-nav='query']").is_hidden()
    page.locator(f".card[data-id='{fixture_run.plain_sample()}']").click()
    ready(page, "sample")
    check_neighbour_rows(page)
    page.screenshot(path=shots / "export-sample.png", full_page=True)
    page.goto(index.resolve().as_uri() + "#/sample/g001.png")
    ready(page, "sample")
    assert page.locator("section.layer[data-layer='block5_pool'] .dup-count").all_inner_texts() == ["×2"]


@pytest.fixture(scope="module")
def conditional_server(conditional_run, tmp_path_factory):
    app = create_app(Settings(run=conditional_run.root, cache_dir=tmp_path_factory.mktemp("conditional-cache")))
    with live_server(app) as url:
        yield url


def test_a_conditional_sample_shows_input_output_and_ground_truth(page, conditional_server, conditional_run, shots):
    sample = conditional_run.held[0]
    page.goto(conditional_server + f"/#/sample/{sample}")
    ready(page, "sample")
    for kind in ("input", "generated", "truth"):
        image = page.locator(f".triptych-{kind} img")
        assert image.get_attribute("src").endswith(f"/{kind}/{sample}")
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert page.locator(".triptych figcaption").all_inner_texts() == ["input", "output", "ground truth"]
    assert "Ground truth (a held-out pair)" in page.locator(".truth-line").inner_text()
    page.wait_for_selector("section.layer .tile")
    check_neighbour_rows(page)
    page.screenshot(path=shots / "conditional-sample.png", full_page=True)


def test_upload_to_generate_shows_the_output_and_its_neighbours(page, conditional_server, conditional_run, shots):
    page.goto(conditional_server + "/#/query")
    ready(page, "query")
    assert page.locator("h2").first.inner_text() == "Generate from your own input"
    page.set_input_files("#query-file", str(conditional_run.inputs / conditional_run.held[0]))
    page.wait_for_selector("section.layer .tile", timeout=60_000)  # the first upload loads generator and VGG
    output = page.locator("#generated-output")
    assert output.is_visible() and output.get_attribute("src").startswith("data:image/png;base64,")
    page.wait_for_function("img => img.complete && img.naturalWidth === 32", arg=output.element_handle())
    check_neighbour_rows(page)
    assert "neighbours of the output" in page.locator(".query-results .hint").inner_text()
    page.screenshot(path=shots / "conditional-generate.png", full_page=True)
