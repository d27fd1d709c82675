"""Plots of finished (or running) runs: fitness curves and the Pareto front.

Reads run directories (``config.yaml``, ``metrics.csv``, ``front.csv``: see "Runs on
disk" in docs/architecture.md) and draws with matplotlib's object API
(``matplotlib.figure.Figure``, never ``pyplot``): no display, no global backend switch, so
it works headless and leaves a user's interactive session alone.

Runs whose configurations differ only in ``seed`` (or run length) form a group; a group of several runs
is drawn as its median with the interquartile band, a group of one as a plain line. A run
of islands (metrics.csv with an ``island`` column) is drawn by its ``all`` rows, and, as
a group of one, with each island's curve as a faint dotted line.

One concept a little over 400 lines: reading run directories into what the plots draw,
and drawing them.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from evolve.errors import UserError

METRICS_COLUMNS = ("generation", "evaluations", "best_error", "wall_seconds")
FRONT_COLUMNS = ("error", "cost", "length", "program")
# Config keys that do not make two runs different experiments: the seed, and how long a
# run goes and how it is saved (by the exact-resume contract, a run to 50 generations is
# the first 50 of a run to 100). Runs that differ only in these form one group.
NOT_GROUPING = ("seed", "generations", "checkpoint_every", "keep_checkpoints")
# The x axes of the fitness curves: metrics column (wall time is the cumulative sum).
CURVE_AXES = (("generation", "generation"), ("evaluations", "evaluations"),
              ("wall_seconds", "wall time"))
ERROR_LABELS = {"max_ulp": "max error (ULP)", "max_abs": "max abs error", "rmse": "RMSE",
                "nmse": "NMSE (1 - R²)"}
# Diversity columns of metrics.csv (evolve/search/mating.py), drawn when every run has them.
DIVERSITY_COLUMNS = (("unique_children", "distinct children (fingerprints)"),
                     ("diversity", "behavioural spread of the population"))
GRID_POINTS = 200


@dataclass(frozen=True)
class Run:
    """What a run directory holds, read back: config, metrics, front (None if absent);
    for a run of islands, ``metrics`` holds the run's rows and ``islands`` the islands'."""

    path: Path
    config: dict
    metrics: pd.DataFrame
    front: pd.DataFrame | None
    islands: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def problem(self) -> str:
        return str(self.config.get("problem", "?"))


def _fix(run_dir: Path) -> str:
    return (f"pass a folder written by `evolve run` (e.g. runs/<name>), or continue this one "
            f"with `evolve resume {run_dir}`")


def _read_csv(path: Path, columns: tuple[str, ...], run_dir: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a readable CSV file ({e}); {_fix(run_dir)}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks the columns {missing} (it has {list(table.columns)}); "
                        f"{_fix(run_dir)}")
    bad = [c for c in columns if c != "program" and not pd.api.types.is_numeric_dtype(table[c])]
    if bad and len(table):  # an empty table is reported by the caller ("no generations")
        raise UserError(f"{path}: the columns {bad} hold values that are not numbers; "
                        f"{_fix(run_dir)}")
    return table


def load_run(run_dir: Path | str) -> Run:
    """Read a run directory; a missing or corrupt file raises a ``UserError`` naming it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; {_fix(run_dir)}")
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise UserError(f"{config_path} is missing, so {run_dir} is not a run directory; "
                        f"{_fix(run_dir)}")
    try:
        config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, RecursionError) as e:
        what = " ".join(str(e).split())[:200]  # UnicodeDecodeError is a ValueError
        raise UserError(f"{config_path} is not valid YAML ({what}); {_fix(run_dir)}") from None
    if not isinstance(config, dict):
        raise UserError(f"{config_path} must hold a mapping, got {type(config).__name__}; "
                        f"{_fix(run_dir)}")
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.is_file():
        raise UserError(f"{metrics_path} is missing (no generation of this run has been "
                        f"recorded); {_fix(run_dir)}")
    metrics = _read_csv(metrics_path, METRICS_COLUMNS, run_dir)
    islands = None
    if "island" in metrics.columns:  # a run of islands: rows per island, then "all"
        total = metrics["island"].astype(str) == "all"
        islands = metrics[~total].sort_values(["island", "generation"], kind="stable")
        metrics = metrics[total]
    if metrics.empty:
        raise UserError(f"{metrics_path} has no generations yet; {_fix(run_dir)}")
    front_path = run_dir / "front.csv"
    front = _read_csv(front_path, FRONT_COLUMNS, run_dir) if front_path.is_file() else None
    return Run(run_dir, config, metrics.sort_values("generation", kind="stable"), front,
               islands)


# -- problems ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ProblemInfo:
    """What the plots need from a problem: baselines, error target and unit, or a note."""

    name: str
    baselines: tuple[dict, ...] = ()
    target: float | None = None
    error: str | None = None
    note: str | None = None
    n_train: int | None = None  # the run's training points (a regression's model choice)


def problem_info(name: str, config: dict | None = None) -> ProblemInfo:
    """Baselines, target and error kind of problem ``name``; on failure, a note instead.

    A ``target`` in ``config`` overrides the problem's.
    """
    from evolve.catalog import load_problem

    target = (config or {}).get("target")
    try:
        p = load_problem(name)
    except Exception as e:  # a problem file may be gone or broken: plot without it
        return ProblemInfo(name, target=target,
                           note=f"problem {name!r} did not load ({e}); baselines not shown")
    n_train = ((config or {}).get("search") or {}).get("n_train") or p.n_train
    return ProblemInfo(name, tuple(p.baselines), p.target if target is None else target,
                       p.error, n_train=n_train)


# -- what the front's errors are -------------------------------------------------------------

def certified_errors(front: pd.DataFrame) -> np.ndarray:
    """The certified max ULP error of each front row (``evolve verify`` or the end-of-run
    certificate: over every float32 of the domain), NaN where a row has none."""
    if "certified_max_ulp" not in front.columns:
        return np.full(len(front), np.nan)
    return pd.to_numeric(front["certified_max_ulp"], errors="coerce").to_numpy(np.float64)


def best_errors(front: pd.DataFrame) -> np.ndarray:
    """Each front row's error as best known: certified where it is, else sampled."""
    certified = certified_errors(front)
    return np.where(np.isnan(certified), front["error"].to_numpy(np.float64), certified)


def target_status(front: pd.DataFrame, target: float | None) -> list[str]:
    """Each row against ``target``: "certified" (its certified error is below it), "sampled
    only" (below it on the sampled points, not certified), "no", or "" without a target.
    A program is never said to meet the target on sampled errors alone."""
    if target is None:
        return [""] * len(front)
    out = []
    for sampled, certified in zip(front["error"].to_numpy(np.float64), certified_errors(front)):
        if not np.isnan(certified):
            out.append("certified" if certified < target else "no")
        else:
            out.append("sampled only" if sampled < target else "no")
    return out


# -- groups -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Group:
    """Runs of one configuration (seeds apart) and the label they are drawn with."""

    label: str
    runs: tuple[Run, ...]


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(problem: str) -> str:
    """A problem's name for labels: a problem file is shown by its file name."""
    return Path(problem).name if problem.endswith(".py") else problem


def _identity(config: dict) -> dict:
    """The configuration without ``NOT_GROUPING`` and where islands ran (which does not
    change a run's result)."""
    rest = {k: v for k, v in config.items() if k not in NOT_GROUPING}
    if isinstance(rest.get("islands"), dict):
        rest["islands"] = {k: v for k, v in rest["islands"].items() if k != "ray_address"}
    return rest


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs grouped by configuration without ``NOT_GROUPING``, labelled by problem and the
    settings that tell the groups apart (in order of first appearance)."""
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        by_key.setdefault(yaml.safe_dump(_identity(run.config), sort_keys=True),
                          []).append(run)
    members = list(by_key.values())
    flat = [_flatten(_identity(g[0].config))
            for g in members]
    keys = sorted({k for f in flat for k in f} - {"problem"})
    differ = [k for k in keys if len({repr(f.get(k)) for f in flat}) > 1]
    groups = []
    for g, f in zip(members, flat):
        shown = [f"{k.rsplit('.', 1)[-1]}={f.get(k)}" for k in differ[:3]]
        label = " ".join([_short(g[0].problem), ", ".join(shown) + (", ..." if len(differ) > 3 else "")])
        label = label.strip() + (f" ({len(g)} seeds)" if len(g) > 1 else f" ({g[0].name})")
        groups.append(Group(label, tuple(g)))
    return groups


# -- drawing ----------------------------------------------------------------------------

def _island_curves(run: Run, column: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each island's curve of a run of islands (none for other runs)."""
    if run.islands is None:
        return []
    return [_xy(run, column, part) for _, part in run.islands.groupby("island", sort=True)]


def _xy(run: Run, column: str, m: pd.DataFrame | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    m = run.metrics if m is None else m
    x = m[column].to_numpy(np.float64)
    if column == "wall_seconds":
        x = np.cumsum(np.nan_to_num(x))
    y = m["best_error"].to_numpy(np.float64)
    return x, np.where(np.isfinite(y), y, np.nan)


def _band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray] | None:
    """Quartiles (3, n) of step-interpolated curves on a grid over the x range all share."""
    lo = max(x[0] for x, _ in curves)
    hi = min(x[-1] for x, _ in curves)
    if not hi > lo:
        return None
    grid = np.linspace(lo, hi, GRID_POINTS)
    # best error at x: the value of the last generation at or before x
    ys = np.stack([y[np.searchsorted(x, grid, side="right") - 1] for x, y in curves])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return grid, np.nanquantile(ys, [0.25, 0.5, 0.75], axis=0)


def _set_error_scale(ax, values: np.ndarray) -> None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return
    positive = v[v > 0]
    if positive.size and positive.max() / positive.min() > 20:
        if (v <= 0).any():
            ax.set_yscale("symlog", linthresh=float(positive.min()))
        else:
            ax.set_yscale("log")


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds > 2 * 3600:
        return 3600.0, "h"
    if seconds > 120:
        return 60.0, "min"
    return 1.0, "s"


def _target_line(ax, infos: list[ProblemInfo]) -> None:
    for t in sorted({i.target for i in infos if i.target is not None}):
        ax.axhline(t, color="0.35", linestyle="--", linewidth=1, label=f"target {t:g}", zorder=1)


def _error_label(infos: list[ProblemInfo]) -> str:
    kinds = {i.error for i in infos}
    return ERROR_LABELS.get(kinds.pop(), "error") if len(kinds) == 1 else "error"


def _notes(fig, infos: list[ProblemInfo]) -> None:
    notes = [i.note for i in infos if i.note]
    if notes:
        fig.text(0.01, 0.005, "\n".join(notes), fontsize=7, color="0.4", va="bottom")


def curves_figure(groups: list[Group], infos: list[ProblemInfo]):
    """Best error against generation, evaluations and wall time, one panel each."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    colors = [f"C{i % 10}" for i in range(len(groups))]
    all_runs = [r for g in groups for r in g.runs]
    scale, unit = _time_unit(max(_xy(r, "wall_seconds")[0][-1] for r in all_runs))
    for ax, (column, title) in zip(axes, CURVE_AXES):
        div = scale if column == "wall_seconds" else 1.0
        for group, color in zip(groups, colors):
            curves = [_xy(r, column) for r in group.runs]
            band = _band(curves) if len(curves) > 1 else None
            if band is None:
                for i, (x, y) in enumerate(curves):
                    ax.plot(x / div, y, color=color, linewidth=1.6, marker="o" if len(x) < 3 else "",
                            label=group.label if i == 0 else None)
                    for k, (xi, yi) in enumerate(_island_curves(group.runs[i], column)):
                        ax.plot(xi / div, yi, color=color, linewidth=0.8, alpha=0.5,
                                linestyle=":", label="each island" if k == 0 else None)
                continue
            for x, y in curves:
                ax.plot(x / div, y, color=color, linewidth=0.6, alpha=0.3)
            grid, (q1, med, q3) = band
            ax.fill_between(grid / div, q1, q3, color=color, alpha=0.25, linewidth=0)
            ax.plot(grid / div, med, color=color, linewidth=2,
                    label=f"{group.label}: median, IQR")
        _target_line(ax, infos)
        ax.set_xlabel(f"{title} ({unit})" if column == "wall_seconds" else title)
        ax.set_title(f"best error vs {title}")
        ax.grid(True, which="major", alpha=0.3)
    ys = np.concatenate([_xy(r, "generation")[1] for r in all_runs])
    _set_error_scale(axes[0], np.concatenate([ys, [i.target for i in infos if i.target]]))
    axes[0].set_ylabel(f"best {_error_label(infos)}")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3),
               fontsize=8, frameon=False)
    _notes(fig, infos)
    return fig


def front_figure(groups: list[Group], infos: list[ProblemInfo]):
    """Each run's Pareto front of error against cost, with baselines and target."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    errors = []
    certified_any = False
    for i, group in enumerate(groups):
        labelled = False
        for run in group.runs:
            if run.front is None or run.front.empty:
                continue
            f = run.front.assign(best=best_errors(run.front))
            f = f[np.isfinite(f["best"].to_numpy(np.float64))].sort_values(["cost", "best"])
            errors.append(f["best"].to_numpy(np.float64))
            ax.step(f["cost"], f["best"], where="post", color=f"C{i % 10}", alpha=0.6)
            sure = ~np.isnan(certified_errors(f))
            ax.plot(f["cost"][~sure], f["best"][~sure], "o", color=f"C{i % 10}",
                    markersize=4, label=None if labelled else group.label)
            labelled = labelled or bool((~sure).any())
            ax.plot(f["cost"][sure], f["best"][sure], "D", color=f"C{i % 10}", markersize=6,
                    markeredgecolor="k", label=None if labelled else group.label)
            labelled = True
            certified_any = certified_any or bool(sure.any())
    for info in infos:
        for j, b in enumerate(info.baselines):
            ax.plot(b["cost"], b["error"], "kX", markersize=8,
                    label="baselines" if j == 0 else None)
            ax.annotate(str(b["name"]), (b["cost"], b["error"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=7)
            errors.append(np.array([b["error"]], np.float64))
    _target_line(ax, infos)
    if errors:
        _set_error_scale(ax, np.concatenate([*errors, [i.target for i in infos if i.target]]))
    else:
        ax.text(0.5, 0.5, "no front.csv yet", transform=ax.transAxes, ha="center")
    ax.set_xlabel("cost (weighted op count)")
    ax.set_ylabel(_error_label(infos))
    ax.set_title("Pareto front: error vs cost")
    # Which kind of error each marker is: a sampled one never shows a program as certified.
    ax.plot([], [], "o", color="0.5", markersize=4, label="sampled error (run's points)")
    if certified_any:
        ax.plot([], [], "D", color="0.5", markeredgecolor="k", markersize=6,
                label="certified error (every float32)")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")  # dominated, so empty, for a front
    _notes(fig, infos)
    return fig


def diversity_figure(groups: list[Group]):
    """Population diversity against generation (``DIVERSITY_COLUMNS``), one panel each;
    groups of several runs as median and interquartile band, like the fitness curves."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.4), layout="constrained")
    axes = fig.subplots(1, len(DIVERSITY_COLUMNS))
    for ax, (column, title) in zip(axes, DIVERSITY_COLUMNS):
        for i, group in enumerate(groups):
            color = f"C{i % 10}"
            curves = [(r.metrics["generation"].to_numpy(np.float64),
                       r.metrics[column].to_numpy(np.float64)) for r in group.runs]
            band = _band(curves) if len(curves) > 1 else None
            if band is None:
                for j, (x, y) in enumerate(curves):
                    ax.plot(x, y, color=color, linewidth=1.6,
                            label=group.label if j == 0 else None)
                continue
            for x, y in curves:
                ax.plot(x, y, color=color, linewidth=0.6, alpha=0.3)
            grid, (q1, med, q3) = band
            ax.fill_between(grid, q1, q3, color=color, alpha=0.25, linewidth=0)
            ax.plot(grid, med, color=color, linewidth=2, label=f"{group.label}: median, IQR")
        ax.set_xlabel("generation")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 2),
               fontsize=8, frameon=False)
    return fig


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (for embedding)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _save(fig, stem: Path) -> list[Path]:
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")]
    fig.savefig(paths[0], dpi=120)
    fig.set_layout_engine("none")  # keep the layout just computed: once is enough
    fig.savefig(paths[1])
    return paths


def plot_runs(run_dirs: list[Path], out: Path) -> list[Path]:
    """Fitness curves of the runs (``<stem>.png/.svg``), their Pareto fronts
    (``<stem>-front.png/.svg``) and, when their metrics have the columns, their diversity
    (``<stem>-diversity.png/.svg``), where ``out`` names the stem (a ``.png`` or ``.svg``
    suffix is dropped). Returns the written paths."""
    if not run_dirs:
        raise UserError("no run directories given; pass one or more, e.g. runs/<name>")
    runs = [load_run(d) for d in run_dirs]
    groups = group_runs(runs)
    configs: dict[str, dict] = {}
    for r in runs:
        configs.setdefault(r.problem, r.config)
    infos = [problem_info(p, c) for p, c in configs.items()]
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".png", ".svg") else out
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = _save(curves_figure(groups, infos), stem)
    written += _save(front_figure(groups, infos), stem.with_name(stem.name + "-front"))
    if all(c in r.metrics.columns for r in runs for c, _ in DIVERSITY_COLUMNS):
        written += _save(diversity_figure(groups), stem.with_name(stem.name + "-diversity"))
    return written
