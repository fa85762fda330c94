"""The report's first screen as a browser draws it (slow; skipped without Chromium).

Set ``SYNTHDATA_SCREENSHOT_DIR`` to keep the screenshot (docs/report.md says how the committed
ones were made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from synthdata.evaluate import Report, evaluate
from synthdata.evaluate.gate import check_gate

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 1280, 900


def _browser() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return browser


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                           "--force-device-scale-factor=1", f"--user-data-dir={profile}",
                           *args], check=True, timeout=180, capture_output=True, text=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory, splits_small) -> tuple[Path, Report]:
    train, holdout, other = splits_small
    report = evaluate(train, other, holdout=holdout, target="death", seed=0)
    report.add_section("gate", check_gate(report.metrics, "default").to_dict())
    report.add_section("privacy", {"private": False, "unit": "row", "entries": [],
                                   "spent": {"epsilon": None, "delta": 1.0},
                                   "statement": "generated without differential privacy"})
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_text(report.to_html())
    return path, report


def test_first_screen_renders_with_the_score(page, tmp_path) -> None:
    from PIL import Image

    browser = _browser()
    path, _ = page
    shot = tmp_path / "first-screen.png"
    _chromium(browser, tmp_path / "profile", f"--window-size={WIDTH},{HEIGHT}",
              f"--screenshot={shot}", path.as_uri())
    image = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert image.shape[:2] == (HEIGHT, WIDTH)
    # not blank: a good share of the pixels differ from the page background
    background = np.array([0xf6, 0xf7, 0xf9])
    assert (np.abs(image - background).sum(axis=2) > 30).mean() > 0.05
    # the PASSED banner (#e3f5e8) and the grade badge are on the first screen
    green_banner = (np.abs(image - np.array([0xe3, 0xf5, 0xe8])).sum(axis=2) < 6).mean()
    assert green_banner > 0.01
    if os.environ.get("SYNTHDATA_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["SYNTHDATA_SCREENSHOT_DIR"]) / shot.name)


def test_the_dom_holds_the_score_level_and_tiles(page, tmp_path) -> None:
    browser = _browser()
    path, report = page
    dom = _chromium(browser, tmp_path / "profile", "--dump-dom", path.as_uri()).stdout
    summary = report.summary
    card = re.search(r'id="quality-score" data-score="([\d.]+)" data-grade="(\w)"', dom)
    assert card is not None, "the browser's DOM has no quality score card"
    assert float(card.group(1)) == pytest.approx(summary["quality"]["score"])
    assert card.group(2) == summary["quality"]["grade"]
    assert f'data-level="{summary["privacy"]["level"]}"' in dom
    tiles = re.findall(r'class="tile t-(pass|fail|warn|info|missing)" data-metric="(\w+)"', dom)
    assert {"shapes", "detection_auc", "mia_auc", "dcr_share"} <= {m for _, m in tiles}
    assert dom.count("<img class=\"plot\"") >= 6
    assert 'id="gate-banner" data-status="passed"' in dom
