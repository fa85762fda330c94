"""The HTML report renders in a headless browser (slow; skipped without Chromium)."""

import shutil
import subprocess

import pytest

from synthdata.evaluate import evaluate


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path, flchain):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    train = flchain.sample(600, random_state=0).reset_index(drop=True)
    hold = flchain.drop(train.index).sample(300, random_state=1).reset_index(drop=True)
    synth = flchain.sample(600, random_state=2).reset_index(drop=True)
    page = tmp_path / "report.html"
    page.write_text(evaluate(train, synth, holdout=hold, target="death").to_html())
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1024,3000", f"--screenshot={shot}", page.as_uri()],
                   check=True, timeout=120, capture_output=True)
    assert shot.stat().st_size > 10_000
    html = page.read_text()
    assert "max-width" in html and "http://" not in html.replace("http://www.w3.org", "")
