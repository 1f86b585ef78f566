"""End to end in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

Runs the quick-start notebook, clicks Run in the widget, watches the overlay change while
the progress bar fills, and saves a screenshot (into ``docs/images/notebook-widget.png``
when ``MASKSCOPE_SCREENSHOTS=1``, as ``make screenshots`` sets; else into the test's
temporary folder, so that the suite leaves the checkout as it was).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .lab import jupyterlab

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_quickstart.ipynb"
DOCS_SCREENSHOT = REPO / "docs" / "images" / "notebook-widget.png"
N_MASKS = 600  # a few seconds on a CPU: several overlay updates while it runs
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]

# Records, in the page, every new overlay image and progress-bar width of the first widget.
WATCH = """() => {
  const root = document.querySelector('.maskscope-explain');
  const img = root.querySelector('.maskscope-image');
  const bar = root.querySelector('.maskscope-progress .progress-bar');
  window.__ms = {events: []};
  const note = (kind) => window.__ms.events.push(
    {kind, t: performance.now(), width: parseFloat(bar.style.width || '0'), src: img.src});
  const watch = (el, attr, kind) => new MutationObserver(() => note(kind))
    .observe(el, {attributes: true, attributeFilter: [attr]});
  watch(img, 'src', 'image');
  watch(bar, 'style', 'bar');
  return bar.style.width;
}"""

KERNEL_IDLE = """() => {
  const nb = window.jupyterapp.shell.currentWidget;
  const kernel = nb && nb.sessionContext && nb.sessionContext.session
    && nb.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && nb.content.widgets.length > 0;
}"""

BUSY_CELLS = """() => [...document.querySelectorAll('.jp-InputArea-prompt')]
  .filter(p => p.textContent.includes('*')).length"""


def _wait(page, js: str, timeout: float, what: str):
    t0 = time.monotonic()
    while True:
        value = page.evaluate(js)
        if value:
            return value
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.25)


def test_quickstart_widget_streams_in_jupyterlab(tmp_path):
    to_docs = os.environ.get("MASKSCOPE_SCREENSHOTS") == "1"
    shot = DOCS_SCREENSHOT if to_docs else tmp_path / "notebook-widget.png"
    sync_api = pytest.importorskip("playwright.sync_api")
    pytest.importorskip("jupyterlab")
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    with jupyterlab(root, tmp_path / "lab") as lab, sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        page = ctx.new_page()
        try:
            page.goto(lab.page_url(NOTEBOOK.name))
            _wait(page, "() => !!window.jupyterapp", 60, "JupyterLab")
            _wait(page, KERNEL_IDLE, 90, "the notebook's kernel")
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_selector(".maskscope-explain .maskscope-image", timeout=120_000)
            # wait until every cell ran (no "[*]" prompt left) and check none failed
            time.sleep(1.0)
            _wait(page, f"() => ({BUSY_CELLS})() === 0", 150, "the notebook to finish")
            errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']").count()
            assert errors == 0, page.locator(".jp-OutputArea-output").all_inner_texts()

            page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
            widget = page.locator(".maskscope-explain").first
            widget.scroll_into_view_if_needed()
            # a longer run than the notebook's, typed into the form like a user would
            n_masks = widget.locator(".maskscope-param-n_masks input")
            n_masks.fill(str(N_MASKS))
            n_masks.press("Enter")
            time.sleep(0.5)  # the kernel receives the new value
            assert page.evaluate(WATCH) == "100%"  # the notebook's own run finished
            t_click = page.evaluate("() => performance.now()")
            widget.locator("button.maskscope-run").click()
            # the bar is reset, then fills again
            _wait(
                page,
                "() => window.__ms.events.some(e => e.width < 100)"
                " && window.__ms.events.at(-1).width >= 100",
                120,
                "the progress bar to fill",
            )
            events = page.evaluate("() => window.__ms.events")
            assert all(e["t"] >= t_click for e in events)
            first_partial = next(i for i, e in enumerate(events) if e["width"] < 100)
            full = next(i for i, e in enumerate(events) if i > first_partial and e["width"] >= 100)
            changes = [e for e in events[first_partial:full] if e["kind"] == "image"]
            assert len({e["src"] for e in changes}) >= 2, events
            seconds = (events[full]["t"] - events[first_partial]["t"]) / 1000
            print(f"{len(changes)} overlay updates while the bar filled in {seconds:.1f} s")
            assert len(changes) <= 5 * seconds + 2  # throttled: none dropped, none piled up
            status = widget.locator(".maskscope-status").inner_text()
            assert f"done: {N_MASKS} perturbations" in status, status
            time.sleep(0.5)  # let the last frame paint
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            raise
        finally:
            ctx.close()
