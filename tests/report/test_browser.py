"""The report in headless Chromium (Debian's /usr/bin/chromium), driven over the DevTools pipe.

Checks: no console error, exception or error log entry (the page's CSP would log any fetch); the
video elements decode (readyState >= 2, duration > 0, the grid's size); the point view drew
points (pixels differing from its background read back from the canvas) and redraws on a toggle
and an orbit drag. A negative control page proves that errors would be seen.
"""

from __future__ import annotations

import time

import pytest

from .cdp import CHROMIUM, Browser, chromium_path

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason=f"{CHROMIUM} not installed (scripts/install.sh installs Debian's chromium when run as root)"
)

PROBE = """(async () => {
  const wait = (v) => v.readyState >= 2 ? Promise.resolve() : new Promise((ok, bad) => {
    v.addEventListener('loadeddata', ok, {once: true});
    v.addEventListener('error', () => bad(new Error('video error ' + (v.error && v.error.code))), {once: true});
    setTimeout(ok, 8000);
  });
  const videos = [...document.querySelectorAll('video')];
  await Promise.all(videos.map(wait));
  const canvas = document.querySelector('.gd-pointview canvas');
  const lit = () => {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] !== 16 || d[i + 1] !== 20 || d[i + 2] !== 24) n++;
    return n;
  };
  const before = lit(), drawn = Number(canvas.dataset.drawn);
  const boxes = [...document.querySelectorAll('.gd-pointview input[type=checkbox]')];
  boxes.forEach(b => b.click());
  const none = lit();
  boxes[0].click();
  const one = lit();
  const img0 = canvas.toDataURL();
  canvas.dispatchEvent(new MouseEvent('mousedown', {clientX: 100, clientY: 100, bubbles: true}));
  window.dispatchEvent(new MouseEvent('mousemove', {clientX: 160, clientY: 120}));
  window.dispatchEvent(new MouseEvent('mouseup', {}));
  return {videos: videos.map(v => ({ready: v.readyState, duration: v.duration, w: v.videoWidth, h: v.videoHeight})),
          before, drawn, none, one, moved: canvas.toDataURL() !== img0, checkboxes: boxes.length,
          rows: document.querySelectorAll('table tr').length};
})()"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with Browser(tmp_path_factory.mktemp("chromium") / "profile") as b:
        b.open_page()
        yield b


def test_report_in_chromium(browser, report):
    t = time.monotonic()
    browser.navigate(report.resolve().as_uri())
    assert browser.errors() == []  # the page's scripts ran at load without an exception or console error
    r = browser.evaluate(PROBE, timeout=15)
    assert browser.errors() == []
    assert len(r["videos"]) == 2
    for v in r["videos"]:
        assert v["ready"] >= 2 and v["duration"] > 0 and (v["w"], v["h"]) == (192, 72), v
    assert r["checkboxes"] == 2 and r["rows"] == 4
    assert r["drawn"] > 300 and r["before"] >= r["drawn"]  # 2 x 200 points, most in front of the camera
    assert r["none"] == 0 and 0 < r["one"] <= r["before"]  # toggles redraw: nothing, then one cloud
    assert r["moved"]  # an orbit drag changes the picture
    assert time.monotonic() - t < 15


def test_errors_are_seen(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('deliberate'); undefinedFunction();</script></body></html>")
    browser.events.clear()
    browser.navigate(bad.resolve().as_uri())
    errors = browser.errors()
    assert any("deliberate" in e for e in errors) and any("undefinedFunction" in e for e in errors), errors
