"""The HTML report: written, self-contained, escaped, and rendered by a real browser."""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from evolve.errors import UserError
from evolve.results.plots import load_run
from evolve.results.report import summary, write_report
from test_plots import USER_PROBLEM, make_run_dir

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Marks the body with how many images decoded (naturalWidth > 0) once the page has loaded;
# added by the test only, so the report itself carries no script.
IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.body.dataset.images = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
</script>"""


def test_report_is_self_contained_and_escaped(tmp_path):
    problem_file = tmp_path / "toy.py"
    problem_file.write_text(USER_PROBLEM)
    run_dir = make_run_dir(tmp_path / "run-1", problem=str(problem_file))
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>evolve report: " in page and "run-1" in page
    assert '<table class="front">' in page and page.count("<details>") == 5
    assert "below target (2)" in page  # the user problem's target
    # program text is escaped: the comment's markup shows as text, never as markup
    assert "# &lt;b&gt;x &lt; 1 &amp; y &gt; 0&lt;/b&gt;" in page
    assert "<b>" not in page
    assert "<h2>Best programs</h2>" in page and "minimax-5" in page  # baselines table
    assert "population: 100" in page  # the config, as YAML
    # no external resources: every src is inline data, and no URL anywhere
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert not re.search(r"https?://|//cdn", page)


def test_report_to_another_path_and_its_summary(tmp_path):
    run_dir = make_run_dir(tmp_path / "r", problem="no_such_problem")
    out = write_report(run_dir, tmp_path / "pages" / "r.html")
    page = out.read_text(encoding="utf-8")
    assert "did not load" in page  # noted, not fatal
    facts = summary(load_run(run_dir))
    assert facts["generations"] == "30"
    metrics = load_run(run_dir).metrics
    rate = metrics.cache_hits.sum() / (metrics.cache_hits.sum() + metrics.cache_misses.sum())
    assert facts["cache hit rate"] == f"{rate:.1%}"
    assert facts["cheapest cost below the target on sampled points"] in (
        "not reached", f"{metrics.best_cost_at_target.min():g}")
    assert facts["best sampled error"] == \
        f"{np.nanmin(metrics.best_error.replace(np.inf, np.nan)):.4g}"


def _certify_rows(run_dir: Path, certified: dict[int, float]) -> None:
    """What `evolve verify` leaves: certified_max_ulp in some rows of front.csv."""
    import pandas as pd

    front = pd.read_csv(run_dir / "front.csv")
    front["certified_max_ulp"] = [certified.get(i, np.nan) for i in range(len(front))]
    front.to_csv(run_dir / "front.csv", index=False)


def test_report_says_below_target_only_on_a_certificate(tmp_path):
    import pandas as pd

    run_dir = make_run_dir(tmp_path / "r")  # exp2: target 1
    front = pd.read_csv(run_dir / "front.csv")
    front.loc[0, "error"], front.loc[1, "error"] = 0.9948, 0.95
    front.to_csv(run_dir / "front.csv", index=False)
    page = write_report(run_dir).read_text(encoding="utf-8")
    assert "<td>sampled only</td>" in page and "<td>certified</td>" not in page
    assert "none certified yet" in page
    assert "not certified: " not in page and ">yes<" not in page
    assert "below the target on sampled points only, not certified (1): sampled error" in page

    _certify_rows(run_dir, {0: 1.189})  # the README's case: 0.9948 sampled, 1.189 certified
    page = write_report(run_dir).read_text(encoding="utf-8")
    row = page[page.index("<td>0.9948</td>"):].split("</tr>")[0]
    assert "<td>1.189</td>" in row and "<td>no</td>" in row  # not below the target
    assert "none: the certified programs miss it" in page
    assert "certified error (every float32)" in page

    _certify_rows(run_dir, {0: 1.189, 1: 0.97})
    page = write_report(run_dir).read_text(encoding="utf-8")
    row = page[page.index("<td>0.95</td>"):].split("</tr>")[0]
    assert "<td>0.97</td>" in row and "<td>certified</td>" in row
    facts = summary(load_run(run_dir), 1.0)
    assert facts["cheapest cost certified below the target"] == "9"
    assert "cheapest certified below the target (1): certified error 0.97" in page


def test_report_of_a_broken_run_is_a_user_error(tmp_path):
    run_dir = make_run_dir(tmp_path / "r")
    (run_dir / "metrics.csv").unlink()
    with pytest.raises(UserError, match=r"metrics\.csv is missing"):
        write_report(run_dir)


def _browser() -> str | None:
    return next((path for b in BROWSERS if (path := shutil.which(b))), None)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [_browser(), "--headless", "--disable-gpu", "--no-sandbox",
               f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None,
                    reason="no chromium binary on PATH (Debian: apt-get install chromium)")
def test_report_renders_with_its_images_in_chromium(tmp_path):
    page = write_report(make_run_dir(tmp_path / "r")).read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", IMAGE_PROBE + "</body>"), encoding="utf-8")

    done = _chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr
    assert 'data-images="2"' in done.stdout, done.stdout[-2000:]
    assert 'data-images-loaded="2"' in done.stdout

    shot = tmp_path / "shot.png"
    done = _chromium(f"--screenshot={shot}", "--window-size=1200,2000", probed.as_uri(),
                     profile=tmp_path / "profile")
    assert done.returncode == 0, done.stderr
    image = imread(shot)
    assert image.shape[:2] == (2000, 1200)
    assert image.std() > 0.05  # the page drew something, not a blank window


def test_report_of_a_regression_run_names_the_chosen_model_not_certificates(tmp_path):
    """An SR run's page: the model the model choice picks (what `evolve export` writes),
    the exact fits, and no word of certificates (NMSE has none)."""
    from evolve.cli import main
    from evolve.model_choice import REGRESSION_RULE

    run = tmp_path / "sr"
    assert main(["run", "nguyen-8", "--generations", "2", "--run-dir", str(run), "--quiet",
                 "--set", "search.population=8", "--set", "search.children=8",
                 "--set", "search.fit_iterations=2"]) == 0
    page = write_report(run).read_text(encoding="utf-8")
    assert f"<th>model chosen ({REGRESSION_RULE})</th>" in page
    assert f"chosen ({REGRESSION_RULE})" in page.split('<table class="front">')[1]
    assert f"The model chosen ({REGRESSION_RULE})" in page.split("<h2>Best programs</h2>")[1]
    assert "certified" not in page.split("<h2>Pareto front</h2>")[1].split(
        "<h2>Configuration</h2>")[0]
    assert "evolve verify" not in page and "sampled" not in page.split("<h2>Pareto front")[1]
