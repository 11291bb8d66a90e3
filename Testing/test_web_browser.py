"""The web app end to end in a real browser: ``mdtexture serve`` on a free local port, driven by Debian's Chromium
through Playwright (the system browser; Playwright never downloads one).

One server and one page walk the clinical workflow in order: open the phantom demo, open the phantom's files and
muscles from the data folder, classify (the verdict is the engine's), check the overlay's pixels change with the
opacity, compute texture scores (table and downloaded CSV equal ``mdtexture classify``'s), paint a stroke (the
segment's voxel count changes; undo restores it), upload a broken file (the engine's message is shown and the server
goes on), cancel a classification. Every wait is on the page's state (a text, a new settled frame), not on a fixed sleep.

Without Chromium these tests FAIL with the command that installs it (they never skip quietly). The page's picture
is saved as ``mdtexture-serve.png`` in $MDTEXTURE_SCREENSHOT_DIR when set (else in pytest's temporary folder).
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from MDTextureLib.errors import InputError
from MDTextureLib.io import load_dixon
from MDTextureLib.labels import read_labels
from MDTextureLib.slicer_bridge.display import inferno_rgb
from MDTextureLib.web.serve import READY_LINE

from web_fixtures import data_root, engine_answer  # noqa: F401  (pytest fixtures)

CHROMIUM = os.environ.get("MDTEXTURE_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = (f"Chromium not found at {CHROMIUM}: the browser tests need it. Install it with "
                "`sudo apt-get install --no-install-recommends chromium` (Debian/Ubuntu), or set MDTEXTURE_CHROMIUM "
                "to a Chromium binary. Never `playwright install` (it downloads a browser).")
REPO = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 120_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(data_root):  # noqa: F811
    """``mdtexture serve --demo --data-root DATA`` on a free port; yields its URL; stopped afterwards."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen([sys.executable, "-m", "MDTextureLib.cli", "serve", "--demo", "--port", str(port),
                                "--data-root", str(data_root), "--upload-limit-mb", "5"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO))
    lines, ready = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if READY_LINE in line:
                ready.set()
    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(120):
            pytest.fail("the server did not start:\n" + "".join(lines[-30:]))
        yield {"url": f"http://127.0.0.1:{port}/", "process": process, "log": lines}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def chromium():
    """The system browser, or a failure that says how to install it (these tests never skip quietly)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(INSTALL_HINT)
    return CHROMIUM


@pytest.fixture(scope="module")
def page(chromium, server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server["url"])
        page.wait_for_function("() => [...document.querySelectorAll('#slice-view img')]"
                               ".some(i => i.src.startsWith('blob:') && i.naturalWidth > 100)")
        yield page
        browser.close()


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text().strip()


def wait_text(page, selector: str, condition: str) -> None:
    """Wait until the element's text satisfies the JavaScript ``condition`` on ``t``."""
    page.wait_for_function(f"() => {{ const e = document.querySelector({selector!r}); "
                           f"if (!e) return false; const t = e.innerText.trim(); return {condition}; }}")


def view_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#slice-view").screenshot())).convert("RGB"), np.int16)


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    return (np.abs(a - b).sum(axis=2) > 30).mean() > 0.001


def settled_view(page, unlike: np.ndarray | None = None) -> np.ndarray:
    """The slice view once two consecutive screenshots agree and (when given) it differs from ``unlike``: the
    frame made after a change arrives from the server's stream some time after the change is acknowledged."""
    previous = None
    for _ in range(200):
        shot = view_pixels(page)
        if previous is not None and np.array_equal(shot, previous) and (unlike is None or differs(shot, unlike)):
            return shot
        previous = shot
        page.wait_for_timeout(300)
    raise AssertionError("the slice view never showed the expected change")


def distance_to_inferno(pixels_rgb: np.ndarray) -> np.ndarray:
    """Per pixel, the RGB distance (0..255 units) to the nearest colour of the heatmap's colour table."""
    palette = inferno_rgb(256) * 255.0
    return np.sqrt(((pixels_rgb[:, None, :].astype(float) - palette[None]) ** 2).sum(axis=2)).min(axis=1)


def set_opacity(page, thumb, key: str, value: float) -> None:
    """Move the opacity slider by a key and check the page took the new value."""
    thumb.press(key)
    page.wait_for_function(f"() => Math.abs(window.trame.state.get('opacity') - {value}) < 1e-6")


def voxel_count(page, muscle: str) -> int:
    return int(text_of(page, f"#voxels-{muscle}").split()[0])


def test_1_demo_opens_a_generated_phantom(page):
    wait_text(page, "#case-name", "t.includes('phantom') && t.includes('synthetic')")
    wait_text(page, "#voxels-TA", "parseInt(t) > 0")


def test_2_open_the_phantom_files_and_muscles_from_the_data_folder(page):
    page.click('[id="folder-case"]')
    page.click('[id="pick-ff-case/ff.nrrd"]')
    page.click('[id="pick-segmentation-case/muscles.seg.nrrd"]')
    page.click("#open-picked")
    wait_text(page, "#case-name", "t === 'ff.nrrd'")
    wait_text(page, "#voxels-MG", "parseInt(t) > 0")


def test_3_classify_shows_the_engines_verdict(page, engine_answer):  # noqa: F811
    page.click("#classify")
    wait_text(page, "#verdict", "t.startsWith('Verdict:')")
    expected = engine_answer["prediction"]
    assert text_of(page, "#verdict") == f"Verdict: {expected['verdict']}"
    shown = text_of(page, "#probabilities")
    for c, p in expected["probabilities"].items():
        assert f"{c} {100 * p:.1f} %" in shown
    assert page.locator("#chart polyline").count() == 3
    assert page.locator("#overlay-fat").is_disabled()  # the fat attribution map was not ticked: nothing to show


def test_4_overlay_pixels_follow_the_opacity(page):
    thumb = page.locator("#opacity").locator("xpath=ancestor::div[contains(@class,'v-slider')]//div[@role='slider']")
    start = settled_view(page)
    set_opacity(page, thumb, "Home", 0.0)  # the FF image alone
    hidden = settled_view(page, unlike=start)
    set_opacity(page, thumb, "End", 1.0)  # the heatmap over it
    shown = settled_view(page, unlike=hidden)
    changed = np.abs(shown - hidden).sum(axis=2) > 30
    if os.environ.get("MDTEXTURE_DEBUG_DIR"):
        Image.fromarray(shown.astype(np.uint8)).save(os.environ["MDTEXTURE_DEBUG_DIR"] + "/shown.png")
        Image.fromarray(hidden.astype(np.uint8)).save(os.environ["MDTEXTURE_DEBUG_DIR"] + "/hidden.png")
    assert changed.mean() > 0.05, f"only {changed.mean():.4f} of the view changed with the overlay's opacity"
    # where the view changed, it shows the heatmap's own colours (inferno) at opacity 1 and something else at 0
    assert np.median(distance_to_inferno(shown[changed])) < 10
    assert np.median(distance_to_inferno(hidden[changed])) > 30
    set_opacity(page, thumb, "Home", 0.0)
    again = settled_view(page, unlike=shown)
    assert not differs(again, hidden)  # back to the same picture
    for _ in range(10):  # 0.5 again (step 0.05), for the picture
        thumb.press("ArrowRight")
    settled_view(page, unlike=again)


def test_5_scores_table_and_downloaded_csv_equal_the_command_line(page, engine_answer, tmp_path):  # noqa: F811
    page.click("#compute-scores")
    page.wait_for_selector("#score-table tbody tr")
    expected = [line.split(",") for line in engine_answer["csv"].strip().splitlines()]
    header, rows = expected[0], expected[1:]
    table = [[cell.inner_text().strip() for cell in row.locator("td").all()]
             for row in page.locator("#score-table tbody tr").all()]
    assert [r[0] for r in table] == [r[header.index("muscle")] for r in rows]
    for shown, row in zip(table, rows):
        score = row[header.index("texture_score")]
        assert shown[1] == (score if score else "absent")
        assert shown[3] == row[header.index("mean_ff")]
    from MDTextureLib.constants import TEXTURE_SCORE_CAVEAT

    assert TEXTURE_SCORE_CAVEAT[1:] in page.inner_text("#score-caveat")  # what the scores are not, under the table
    with page.expect_download() as download:
        page.click("#download-csv")
    assert Path(download.value.path()).read_text(encoding="utf-8") == engine_answer["csv"]
    folder = Path(os.environ.get("MDTEXTURE_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / "mdtexture-serve.png"))


def test_6_a_painted_stroke_changes_the_segments_voxel_count_on_one_slice(page, data_root):  # noqa: F811
    page.locator('[id="segment-Sol"]').click()
    page.click("#effect-paint")
    before = voxel_count(page, "Sol")
    box = page.locator("#slice-view").bounding_box()
    y = box["y"] + box["height"] * 0.5
    page.mouse.move(box["x"] + box["width"] * 0.35, y)
    page.mouse.down()
    for i in range(1, 21):
        page.mouse.move(box["x"] + box["width"] * (0.35 + 0.3 * i / 20), y)
    page.mouse.up()
    wait_text(page, "#voxels-Sol", f"parseInt(t) !== {before}")
    assert voxel_count(page, "Sol") > before
    # the stroke painted one axial slice (a 2-D brush), seen in the segmentation the page exports
    page.fill("#export-name", "painted")
    page.click("#export-folder")
    wait_text(page, "#message", "t.includes('painted')")
    grid = load_dixon(ff=data_root / "case" / "ff.nrrd").grid
    painted, drawn = (read_labels(path, grid) for path in (data_root / "painted" / "muscles.seg.nrrd",
                                                          data_root / "case" / "muscles.seg.nrrd"))
    sol_after, sol_before = ((lm.layers == next(v for v, n in lm.names.items() if n == "Sol")).any(axis=0)
                             for lm in (painted, drawn))
    new_voxels = sol_after & ~sol_before
    assert new_voxels.sum() == voxel_count(page, "Sol") - before
    assert np.count_nonzero(new_voxels.any(axis=(1, 2))) == 1
    page.click("#effect-none")
    page.click("#undo")
    wait_text(page, "#voxels-Sol", f"parseInt(t) === {before}")


def test_7_a_broken_upload_shows_the_engines_message_and_the_server_goes_on(page, server, tmp_path):
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: float\ndimension: 3\n")
    with pytest.raises(InputError) as engine_says:
        load_dixon(ff=broken)
    page.locator("#upload-ff").set_input_files(str(broken))
    page.click("#open-uploads")
    wait_text(page, "#error", "t.length > 0")
    assert text_of(page, "#error") == str(engine_says.value).replace(str(broken.parent) + os.sep, "")
    assert server["process"].poll() is None
    page.click("#open-demo")
    wait_text(page, "#case-name", "t.includes('phantom')")
    assert page.locator("#error").count() == 0


def test_8_cancel_stops_a_classification_and_the_server_goes_on(page, server):
    page.click("#classify")
    page.wait_for_selector("#cancel:not([disabled])")
    page.click("#cancel")
    wait_text(page, "#message", "t.includes('cancelled')")
    assert page.locator("#verdict").count() == 0 and page.locator("#error").count() == 0
    assert server["process"].poll() is None
    page.wait_for_selector("#classify:not([disabled])")  # ready to classify again
