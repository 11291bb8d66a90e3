"""Measure ``mdtexture serve``: start-up time (command to "ready" line) and the server's resident memory, idle and
after classifying the demo phantom in the browser (Debian's Chromium through Playwright).

    python Testing/measure_serve.py [--chromium /usr/bin/chromium]

Prints one line per number. Not a test: run it by hand on the machine whose numbers you want.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) in MB of one process, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def children(pid: int) -> list:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "MDTextureLib.cli", "serve", "--demo", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO))
    try:
        for line in server.stdout:
            if "is ready at" in line:
                break
        ready_s = time.perf_counter() - t0
        print(f"start-up (command to ready, demo phantom opened): {ready_s:.1f} s")
        print("resident memory idle: {:.0f} MB (peak {:.0f} MB)".format(*rss_mb(server.pid)))
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            t1 = time.perf_counter()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("() => [...document.querySelectorAll('#slice-view img')]"
                                   ".some(i => i.src.startsWith('blob:') && i.naturalWidth > 100)")
            print(f"first slice view in the page: {time.perf_counter() - t1:.1f} s")
            t2 = time.perf_counter()
            page.click("#classify")
            worker_peak = 0.0
            while page.locator("#verdict").count() == 0:  # the classification's child process, sampled
                for pid in children(server.pid):
                    try:
                        worker_peak = max(worker_peak, rss_mb(pid)[1])
                    except (FileNotFoundError, ProcessLookupError, KeyError):
                        pass
                page.wait_for_timeout(200)
            print(f"classify (click to verdict shown): {time.perf_counter() - t2:.1f} s; the classifying child "
                  f"process peaked at {worker_peak:.0f} MB resident (sampled every 0.2 s)")
            page.click("#compute-scores")
            page.wait_for_selector("#score-table tbody tr")
            print("resident memory with a classified, scored case: {:.0f} MB (peak {:.0f} MB)".format(
                *rss_mb(server.pid)))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
