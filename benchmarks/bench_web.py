"""Web demo benchmark: the neighbours endpoint under load, and the first render of a 1,000-sample gallery.

1. Load: `novelty serve` on a fixture run of 1,000 samples (its own process, as users run it), then
   32 concurrent keep-alive clients on loopback request GET /api/samples/{id}/neighbors for random
   samples and layers, bounded by a request count and a time limit. Goal: p99 < 25 ms, no errors.
   Baseline in the same run: the same load on GET /api/summary (a cached body: the server's floor).
2. Render: headless Chromium (Debian's, via Playwright) opens the gallery of the same run; the time
   from navigation start until all 1,000 cards are in the page. Goal: < 2 s. Baseline: a gallery of
   10 samples. Skipped when /usr/bin/chromium is missing.
3. Upload-to-generate (a conditional run at 64 px: ``novelty analyze --inputs`` of a seeded, untrained
   64 px pix2pix checkpoint of the default width on edge -> mask pairs, ImageNet VGG16): one lean keep-alive client posts a
   held-out input to POST /api/query/generate (the generator's output, then its neighbours) ``--uploads``
   times after one warm-up upload (which loads generator and VGG16). Goal: median < 1 s. Baseline in
   the same server: POST /api/query with the same image (embedding and search, no generator).
   ``--checkpoint P``: the same on a trained checkpoint (the bundled ``data/checkpoints/twemoji-edges64``)
   analysed on its own pairs (``holdout.json``'s source, e.g. all 1,949 ``twemoji-edges`` targets).

Usage: python benchmarks/bench_web.py [--clients 32] [--requests 4000] [--seconds 60] [--runs 3]
       python benchmarks/bench_web.py --only-generate [--uploads 30] [--checkpoint data/checkpoints/twemoji-edges64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from webhelpers import CHROMIUM, CHROMIUM_ARGS, LAYERS, chromium_missing_reason, free_port, make_run  # noqa: E402

LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)


def start_server(run: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "novelty.cli", "serve", str(run), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/api/summary", timeout=2).read()
            return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("server did not start within 120 s")


async def _client(port: int, paths: list[str], latencies: list[float], errors: list[str], deadline: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            match = LENGTH.search(head)
            await reader.readexactly(int(match.group(1)) if match else 0)
            latencies.append(time.perf_counter() - started)
            status = int(head.split(b" ", 2)[1])
            if status != 200:
                errors.append(f"{status} {path}")
    finally:
        writer.close()


async def _load(port: int, paths: list[str], clients: int, seconds: float) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    share = [paths[i::clients] for i in range(clients)]
    started = time.perf_counter()
    deadline = started + seconds
    results = await asyncio.gather(*(_client(port, part, latencies, errors, deadline) for part in share),
                                   return_exceptions=True)
    errors += [f"client failed: {r!r}" for r in results if isinstance(r, BaseException)]
    return latencies, errors, time.perf_counter() - started


def load_test(url: str, paths: list[str], clients: int, seconds: float) -> dict:
    port = int(url.rsplit(":", 1)[1])
    try:  # the load generator shares the two cores with the server: keep its own overhead low
        import uvloop

        latencies, errors, wall = uvloop.run(_load(port, paths, clients, seconds))
    except ImportError:
        latencies, errors, wall = asyncio.run(_load(port, paths, clients, seconds))
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    return {"requests": len(latencies), "errors": len(errors), "first_errors": errors[:3],
            "rps": len(latencies) / wall, "p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99),
            "max": ordered[-1] * 1000 if ordered else float("nan")}


def render_times(url: str, runs: int, expected: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for _ in range(runs + 1):  # the first run warms the server's and the disk's caches
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(url + "/")
            page.wait_for_function(f"() => document.querySelectorAll('.gallery .card').length === {expected}",
                                   timeout=60_000)
            times.append(page.evaluate("() => performance.now()") / 1000)
            context.close()
        browser.close()
    return times[1:]


def upload_times(url: str, path: str, data: bytes, count: int) -> list[float]:
    """Seconds per POST of ``data`` as the multipart file field to ``path``, one keep-alive connection."""
    import http.client
    from urllib.parse import urlsplit

    boundary = "benchboundary7f3a"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"input.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=300)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: {response.status} {payload[:300]!r}")
        times.append(time.perf_counter() - started)
    connection.close()
    return times


def checkpoint_run(tmp: Path, checkpoint: Path, n_inputs: int = 8) -> tuple[Path, bytes]:
    """``novelty analyze --inputs`` of a trained pix2pix ``checkpoint`` (ImageNet VGG16, default options)
    on its own pair folder (``holdout.json``'s source: the embedded ``twemoji-edges`` or a folder), for
    the inputs of its first ``n_inputs`` held-out pairs; ``(run folder, one held-out input's PNG bytes)``."""
    import shutil

    from novelty.analysis import AnalyzeOptions
    from novelty.conditional import analyze_conditional
    from novelty.files import read_json
    from novelty.gan.pix2pix_family import HOLDOUT_FILE
    from novelty.images.assets import SETS

    holdout = read_json(checkpoint / HOLDOUT_FILE)
    source = holdout["source"]
    pairs = SETS[source]() if source in SETS else Path(source)
    inputs = tmp / "inputs"
    inputs.mkdir(parents=True)
    for name in holdout["ids"][:n_inputs]:
        shutil.copy(pairs / "A" / name, inputs / name)
    analyze_conditional(pairs, tmp / "run", inputs=inputs, checkpoint=checkpoint, options=AnalyzeOptions())
    return tmp / "run", (inputs / holdout["ids"][0]).read_bytes()


def generate_part(tmp: Path, uploads: int, checkpoint: Path | None = None) -> None:
    started = time.perf_counter()
    if checkpoint is None:
        from webhelpers import make_conditional_run

        from novelty import defaults

        run = make_conditional_run(tmp / "conditional", size=64, weights="imagenet",
                                   base_filters=defaults.BASE_FILTERS)
        root, data, what = run.root, (run.inputs / run.held[0]).read_bytes(), "untrained default-width checkpoint"
    else:
        root, data = checkpoint_run(tmp / "conditional", checkpoint)
        what = f"trained checkpoint {checkpoint}"
    print(f"\nupload-to-generate: conditional run at 64 px ({what}) written in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    server, url = start_server(root)
    try:
        first = upload_times(url, "/api/query/generate", data, 1)[0]
        generate = upload_times(url, "/api/query/generate", data, uploads)
        query = upload_times(url, "/api/query", data, uploads)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"  first upload (loads the generator and VGG16): {first:.2f} s")
    for name, times in (("baseline POST /api/query", query), ("POST /api/query/generate", generate)):
        ordered = sorted(times)
        print(f"  {name:<28} {len(times)} uploads  median {statistics.median(times) * 1000:7.1f} ms  "
              f"p90 {ordered[int(0.9 * (len(ordered) - 1))] * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms")
    median = statistics.median(generate)
    print(f"  goal median < 1 s: {'met' if median < 1 else 'NOT met'} (median / goal = {median:.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000, help="per endpoint")
    parser.add_argument("--seconds", type=float, default=60.0, help="time limit per endpoint")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="gallery renders to time")
    parser.add_argument("--uploads", type=int, default=30, help="upload-to-generate requests to time")
    parser.add_argument("--only-generate", action="store_true", help="only part 3, upload-to-generate")
    parser.add_argument("--checkpoint", type=Path, default=None, help="part 3 on this trained pix2pix checkpoint "
                        "(e.g. data/checkpoints/twemoji-edges64) and its pair set, not an untrained one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_web_") as tmp:
        generate_part(Path(tmp), args.uploads, args.checkpoint)
        if args.only_generate:
            return 0
        started = time.perf_counter()
        big = make_run(Path(tmp) / "big", n_generated=args.samples, n_training=200)
        small = make_run(Path(tmp) / "small", n_generated=10, n_training=30)
        print(f"fixture runs written in {time.perf_counter() - started:.1f} s "
              f"({args.samples} and 10 samples); {os.cpu_count()} CPUs", flush=True)

        server, url = start_server(big.root)
        try:
            rng = random.Random(0)
            neighbour_paths = [f"/api/samples/{quote(rng.choice(big.generated_ids))}/neighbors?layer={rng.choice(LAYERS)}"
                               for _ in range(args.requests)]
            load_test(url, neighbour_paths[:200], args.clients, args.seconds)  # warm-up
            baseline = load_test(url, ["/api/summary"] * args.requests, args.clients, args.seconds)
            result = load_test(url, neighbour_paths, args.clients, args.seconds)
            print(f"\nload: {args.clients} concurrent keep-alive clients on loopback, single server process")
            for name, r in (("baseline GET /api/summary", baseline), ("GET /api/samples/{id}/neighbors", result)):
                print(f"  {name:<34} {r['requests']:>5} req  {r['rps']:7.0f} req/s  p50 {r['p50']:6.1f} ms  "
                      f"p95 {r['p95']:6.1f} ms  p99 {r['p99']:6.1f} ms  max {r['max']:6.1f} ms  errors {r['errors']}")
                if r["first_errors"]:
                    print(f"    first errors: {r['first_errors']}")
            print(f"  neighbours / baseline: p99 x{result['p99'] / baseline['p99']:.2f}, "
                  f"throughput x{result['rps'] / baseline['rps']:.2f}")
            print(f"  goal p99 < 25 ms: {'met' if result['p99'] < 25 and not result['errors'] else 'NOT met'} "
                  f"(p99 / goal = {result['p99'] / 25:.2f}, errors {result['errors']})")
        finally:
            server.terminate()
            server.wait(timeout=30)

        reason = chromium_missing_reason()
        if reason:
            print(f"\nrender: skipped ({reason})")
            return 0
        timings = {}
        for name, fixture, expected in (("baseline 10 samples", small, 10), (f"{args.samples} samples", big, args.samples)):
            server, url = start_server(fixture.root)
            try:
                timings[name] = render_times(url, args.runs, expected)
            finally:
                server.terminate()
                server.wait(timeout=30)
        print("\nrender: navigation start -> every gallery card in the page, headless Chromium")
        for name, times in timings.items():
            print(f"  {name:<20} median {statistics.median(times):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})")
        big_median = statistics.median(timings[f"{args.samples} samples"])
        print(f"  {args.samples} / 10 samples: x{big_median / statistics.median(timings['baseline 10 samples']):.2f}")
        print(f"  goal < 2 s: {'met' if big_median < 2 else 'NOT met'} (median / goal = {big_median / 2:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
