"""Plots of run directories: files written, images valid, groups, baselines, errors.

``make_run_dir`` builds a synthetic run directory in the on-disk format (docs/architecture.md,
"Runs on disk"); test_report uses it too.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread

from evolve.errors import UserError
from evolve.results.plots import (
    GRID_POINTS,
    curves_figure,
    front_figure,
    group_runs,
    load_run,
    plot_runs,
    problem_info,
)

PROGRAM = """\
r1 = 0.0790199
r2 = 0.22412628
r1 = fma(r1, r0, r2)    # <b>x < 1 & y > 0</b>
return r1
"""

USER_PROBLEM = '''
import numpy as np
from evolve.problem import Problem

PROBLEM = Problem(
    name="toy", description="toy", reference=lambda x: np.exp2(x[:, 0]),
    domain=((0.0, 1.0),), ops=("add", "mul", "fma"), target=2.0,
    baselines=({"name": "minimax-3", "error": 40.0, "cost": 3.0},
               {"name": "minimax-5", "error": 0.9, "cost": 5.0}),
)
'''


def make_run_dir(path: Path, *, problem: str = "exp2", seed: int = 0, generations: int = 30,
                 population: int = 100) -> Path:
    """A run directory with config.yaml, metrics.csv and front.csv of plausible numbers."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    config = {"problem": problem, "seed": seed, "generations": generations,
              "search": {"population": population, "children": population}}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    g = np.arange(1, generations + 1)
    best = np.minimum.accumulate(1e4 * np.exp(-g / 3.0) * rng.uniform(0.5, 2.0, generations))
    best[0] = np.inf  # every program of the first generation was invalid
    misses = rng.integers(50, 100, generations)
    hits = population - misses
    pd.DataFrame({
        "generation": g, "evaluations": np.cumsum(misses), "evaluated": misses,
        "fits": misses // 2, "cache_hits": hits, "cache_misses": misses,
        "cache_false_hits": 0, "best_error": best,
        "best_cost_at_target": np.where(best < 1.0, 12.0 - g / 10, np.nan),
        "front_size": 5, "unique_fingerprints": population - 3, "population": population,
        "wall_seconds": rng.uniform(0.5, 1.5, generations),
    }).to_csv(path / "metrics.csv", index=False)
    pd.DataFrame({
        "error": np.array([0.5, 3.0, 40.0, 900.0, 1e4]) * rng.uniform(0.5, 2, 5), "cost": [14.0, 9.0, 5.0, 3.0, 1.0],
        "length": [16, 11, 7, 4, 2],
        "program": [PROGRAM.replace("0.0790199", str(c)) for c in (1, 2, 3, 4, 5)],
    }).to_csv(path / "front.csv", index=False)
    return path


def _check_images(paths: list[Path]) -> None:
    for p in paths:
        assert p.is_file() and p.stat().st_size > 0, p
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            image = imread(p)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
            assert image.std() > 0  # not a blank canvas
        else:
            assert "<svg" in p.read_text()[:1000]


def test_groups_of_seeds_and_another_group(tmp_path):
    dirs = [make_run_dir(tmp_path / f"a{s}", seed=s) for s in range(3)]
    dirs.append(make_run_dir(tmp_path / "b", seed=7, population=200, generations=20))
    written = plot_runs(dirs, tmp_path / "plots" / "curves.png")
    names = [p.name for p in written]
    assert names == ["curves.png", "curves.svg", "curves-front.png", "curves-front.svg"]
    _check_images(written)

    groups = group_runs([load_run(d) for d in dirs])
    assert [len(g.runs) for g in groups] == [3, 1]
    assert groups[0].label == "exp2 children=100, population=100 (3 seeds)"
    assert groups[1].label == "exp2 children=200, population=200 (b)"


def test_a_single_run(tmp_path):
    run = make_run_dir(tmp_path / "only")
    written = plot_runs([run], tmp_path / "single")
    assert [p.name for p in written] == ["single.png", "single.svg",
                                         "single-front.png", "single-front.svg"]
    _check_images(written)
    assert group_runs([load_run(run)])[0].label == "exp2 (only)"


def test_seeds_of_different_lengths_share_a_band(tmp_path):
    # runs of one configuration but of different lengths are one group
    dirs = [make_run_dir(tmp_path / f"s{s}", seed=s, generations=g)
            for s, g in enumerate((12, 30, 30))]
    metrics = dirs[1] / "metrics.csv"  # and one stopped early: fewer rows than configured
    pd.read_csv(metrics).head(20).to_csv(metrics, index=False)
    groups = group_runs([load_run(d) for d in dirs])
    assert [len(g.runs) for g in groups] == [3]
    axes = curves_figure(groups, [problem_info("exp2")]).axes
    medians = [[line for line in ax.lines if "median" in line.get_label()] for ax in axes]
    assert [len(m) for m in medians] == [1, 1, 1]
    assert all(len(ax.collections) == 1 for ax in axes)  # one IQR band a panel
    x = medians[0][0].get_xdata()  # over the generations all three runs cover
    assert len(x) == GRID_POINTS and x[0] == 1 and x[-1] == 12
    assert axes[0].get_yscale() == "log"


def test_baselines_and_target_of_a_user_problem(tmp_path):
    problem_file = tmp_path / "toy.py"
    problem_file.write_text(USER_PROBLEM)
    run = load_run(make_run_dir(tmp_path / "toy", problem=str(problem_file)))
    info = problem_info(run.problem, run.config)
    assert info.note is None and info.target == 2.0 and len(info.baselines) == 2
    ax = front_figure(group_runs([run]), [info]).axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "baselines" in labels and "target 2" in labels
    assert {t.get_text() for t in ax.texts} == {"minimax-3", "minimax-5"}
    assert ax.get_yscale() == "log"


def test_a_problem_that_does_not_load_is_noted_not_fatal(tmp_path):
    run = load_run(make_run_dir(tmp_path / "gone", problem="no_such_problem"))
    info = problem_info(run.problem, run.config)
    assert info.baselines == () and info.target is None
    assert "'no_such_problem' did not load" in info.note
    fig = front_figure(group_runs([run]), [info])
    assert any("did not load" in t.get_text() for t in fig.texts)


def test_missing_metrics_is_a_user_error(tmp_path):
    run_dir = make_run_dir(tmp_path / "r")
    (run_dir / "metrics.csv").unlink()
    with pytest.raises(UserError, match=r"metrics\.csv is missing.*evolve resume"):
        plot_runs([run_dir], tmp_path / "x")


@pytest.mark.parametrize("breakage, message", [
    ("no_dir", r"does not exist"),
    ("no_config", r"config\.yaml is missing"),
    ("bad_yaml", r"config\.yaml is not valid YAML"),
    ("no_column", r"metrics\.csv lacks the columns \['best_error'\]"),
    ("empty", r"metrics\.csv has no generations yet"),
])
def test_broken_run_directories_are_user_errors(tmp_path, breakage, message):
    run_dir = make_run_dir(tmp_path / "r")
    metrics = run_dir / "metrics.csv"
    if breakage == "no_dir":
        run_dir = tmp_path / "nowhere"
    elif breakage == "no_config":
        (run_dir / "config.yaml").unlink()
    elif breakage == "bad_yaml":
        (run_dir / "config.yaml").write_text("problem: [exp2\n")
    elif breakage == "no_column":
        pd.read_csv(metrics).drop(columns="best_error").to_csv(metrics, index=False)
    else:
        metrics.write_text(metrics.read_text().splitlines()[0] + "\n")
    with pytest.raises(UserError, match=message):
        load_run(run_dir)


def test_front_figure_draws_certified_errors_where_front_csv_has_them(tmp_path):
    run_dir = make_run_dir(tmp_path / "r")
    front = pd.read_csv(run_dir / "front.csv")
    front.loc[0, "error"] = 0.9948
    front["certified_max_ulp"] = [1.189, np.nan, np.nan, np.nan, np.nan]
    front.to_csv(run_dir / "front.csv", index=False)
    run = load_run(run_dir)
    fig = front_figure(group_runs([run]), [problem_info("exp2")])
    ax = fig.axes[0]
    ys = np.concatenate([line.get_ydata() for line in ax.get_lines()])
    assert 1.189 in ys and 0.9948 not in ys  # the certificate replaces the sampled error
    labels = ax.get_legend_handles_labels()[1]
    assert "certified error (every float32)" in labels
    assert "sampled error (run's points)" in labels
