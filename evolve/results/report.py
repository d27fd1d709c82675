"""A run's report: one self-contained HTML page (plots embedded, no external resources).

The page holds a summary (generations, evaluations, cache hit rate, best sampled error,
cheapest cost at the target on sampled points and certified, wall time), the fitness
curves and the Pareto front as embedded PNG images, the front as a table with each
program's text, the best programs, the problem's baselines and the run's configuration.
Everything taken from the run is HTML-escaped.

Errors are labelled as what they are: "sampled" (the max over the run's training and check
points, from metrics.csv and front.csv's ``error``) or "certified" (front.csv's
``certified_max_ulp``: over every float32 of the domain). A program is said to be below
the target only on a certificate; below it on sampled points alone it is "sampled only".
A regression problem (error "nmse") has no certificates: its page names the model the
model choice picks (``evolve.model_choice``, what ``evolve export`` writes) and the exact
fits (training NMSE under the target) instead.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import yaml

from evolve.results.plots import (
    ProblemInfo,
    Run,
    best_errors,
    certified_errors,
    curves_figure,
    front_figure,
    group_runs,
    load_run,
    png_bytes,
    problem_info,
    target_status,
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right;
         vertical-align: top; }
th { background: #f3f3f3; } td.text { text-align: left; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; margin: 0; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
.note { color: #777; font-size: 0.9em; }
"""


def _num(value: float, fmt: str = ".4g") -> str:
    return "&mdash;" if value is None or not math.isfinite(value) else format(value, fmt)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def chosen_row(run: Run, info: ProblemInfo | None) -> int | None:
    """For a regression problem, the front row (position in front.csv) that the default
    model choice picks; None for other problems or without a front."""
    from evolve.model_choice import REGRESSION_RULE, choose_model

    f = run.front
    if info is None or info.error != "nmse" or f is None or f.empty:
        return None
    errors = np.nan_to_num(f["error"].to_numpy(np.float64), nan=np.inf)
    return choose_model(errors, f["cost"].to_numpy(np.float64), REGRESSION_RULE, info.n_train)


def summary(run: Run, target: float | None = None,
            info: ProblemInfo | None = None) -> dict[str, str]:
    """The run's headline figures, as display strings (escaped, ready for HTML); with a
    ``target``, the cheapest program certified below it (front.csv); for a regression
    problem (``info``), the chosen model and the cheapest exact fit instead."""
    m = run.metrics
    lookups = hit_rate = None
    if {"cache_hits", "cache_misses"} <= set(m.columns):
        hits = float(m["cache_hits"].sum())
        lookups = hits + float(m["cache_misses"].sum())
        hit_rate = f"{hits / lookups:.1%}" if lookups else "no lookups"
    errors = m["best_error"].to_numpy(np.float64)
    at_target = (m["best_cost_at_target"].to_numpy(np.float64)
                 if "best_cost_at_target" in m.columns else np.array([np.nan]))
    reached = at_target[np.isfinite(at_target)]
    head = {
        "problem": html.escape(run.problem),
        "seed": html.escape(str(run.config.get("seed", "?"))),
        "generations": f"{int(m['generation'].iloc[-1]):,}",
        "evaluations": f"{int(m['evaluations'].iloc[-1]):,}",
        "cache hit rate": hit_rate or "&mdash;",
    }
    wall = {"wall time": _duration(float(np.nansum(m["wall_seconds"].to_numpy(np.float64))))}
    chosen = chosen_row(run, info)
    if chosen is not None:
        from evolve.model_choice import REGRESSION_RULE

        f = run.front
        errors = f["error"].to_numpy(np.float64)
        exact = f["cost"].to_numpy(np.float64)[errors < target] if target is not None else []
        return {
            **head,
            f"model chosen ({REGRESSION_RULE})": f"cost {_num(float(f['cost'].iloc[chosen]), 'g')}"
                                               f", training error {_num(float(errors[chosen]))}",
            "lowest training error": _num(float(np.min(errors))),
            "cheapest exact fit (training error below the target)":
                _num(float(np.min(exact)), "g") if len(exact) else "none",
            **wall,
        }
    return {
        **head,
        "best sampled error": _num(float(np.min(errors)) if np.isfinite(errors).any()
                                   else None),
        "cheapest cost below the target on sampled points":
            _num(float(reached.min())) if reached.size else "not reached",
        **({"cheapest cost certified below the target": _certified_cost(run, target)}
           if target is not None else {}),
        **wall,
    }


def _certified_cost(run: Run, target: float) -> str:
    f = run.front
    if f is None or f.empty:
        return "no front.csv yet"
    sure = np.array(target_status(f, target)) == "certified"
    if sure.any():
        return _num(float(f["cost"].to_numpy(np.float64)[sure].min()), "g")
    if np.isnan(certified_errors(f)).all():
        return f"none certified yet (evolve verify {html.escape(str(run.path))})"
    return "none: the certified programs miss it"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _front_table(run: Run, target: float | None, chosen: int | None = None) -> str:
    if run.front is None or run.front.empty:
        return '<p class="note">No front.csv in this run yet.</p>'
    f = run.front.assign(best=best_errors(run.front), certified=certified_errors(run.front),
                         status=target_status(run.front, target))
    if chosen is not None:  # a regression: exact fits, and the chosen model, no certificates
        from evolve.model_choice import REGRESSION_RULE

        f["status"] = ["exact fit" if e < target else "" for e in f["error"]]
        f.iloc[chosen, f.columns.get_loc("status")] = (
            f"chosen ({REGRESSION_RULE})" + (", exact fit" if f["status"].iloc[chosen] else ""))
    with_certs = bool(np.isfinite(f["certified"]).any())
    rows = []
    for _, r in f.sort_values(["best", "cost"]).iterrows():
        program = html.escape(str(r["program"]))
        below = "" if target is None else f"<td>{r['status']}</td>"
        cert = f"<td>{_num(float(r['certified']))}</td>" if with_certs else ""
        rows.append(
            f"<tr><td>{_num(float(r['error']))}</td>{cert}"
            f"<td>{_num(float(r['cost']), 'g')}</td><td>{int(r['length'])}</td>{below}"
            f'<td class="text"><details><summary>{len(program.splitlines())} lines'
            f"</summary><pre>{program}</pre></details></td></tr>")
    below = "" if target is None else f"<th>below target ({target:g})</th>"
    cert = "<th>certified error (every float32)</th>" if with_certs else ""
    head = (f"<tr><th>sampled error</th>{cert}<th>cost</th><th>length</th>{below}"
            "<th>program</th></tr>")
    note = ('<p class="note">Sampled error: the max over the run\'s training and check '
            "points. Below the target means certified below it (<code>evolve verify</code>); "
            "&ldquo;sampled only&rdquo; means below it on the sampled points, not "
            "certified.</p>" if target is not None else "")
    if chosen is not None:
        head = head.replace(f"below target ({target:g})", "model").replace(
            "sampled error", "training error")
        note = ('<p class="note">Error: the training NMSE (1 &minus; R&sup2;); an exact fit is '
                f"below {target:g}. The chosen model is what <code>evolve export</code> "
                "writes (<code>--choose</code> for another rule).</p>")
    return f'{note}<table class="front">{head}{"".join(rows)}</table>'


def _best_programs(run: Run, target: float | None, chosen: int | None = None) -> str:
    """The lowest-error program and the cheapest one below the target (certified; else
    the cheapest below it on sampled points, said so), in text form; for a regression,
    the chosen model first."""
    f = run.front
    if f is None or f.empty:
        return ""
    f = f.assign(best=best_errors(f), certified=certified_errors(f),
                 status=target_status(f, target))
    picks: dict = {}
    if chosen is not None:
        from evolve.model_choice import REGRESSION_RULE

        picks[f.index[chosen]] = [f"the model chosen ({REGRESSION_RULE})"]
    picks.setdefault(f.sort_values(["best", "cost"]).index[0], []).append("lowest error")
    for status, title in (("certified", "cheapest certified below the target"),
                          ("sampled only", "cheapest below the target on sampled points only, "
                                           "not certified")):
        if chosen is None and (f["status"] == status).any():
            cheapest = f[f["status"] == status].sort_values(["cost", "best"]).index[0]
            picks.setdefault(cheapest, []).append(f"{title} ({target:g})")
            break

    def errors(i) -> str:
        kind = "sampled" if chosen is None else "training"
        text = f"{kind} error {_num(float(f.loc[i, 'error']))}"
        if np.isfinite(f.loc[i, "certified"]):
            text = f"certified error {_num(float(f.loc[i, 'certified']))}, " + text
        return text

    parts = [f"<h3>{html.escape(', '.join(titles)).capitalize()}: {errors(i)}, cost "
             f"{_num(float(f.loc[i, 'cost']), 'g')}</h3>"
             f"<pre>{html.escape(str(f.loc[i, 'program']))}</pre>" for i, titles in picks.items()]
    return "<h2>Best programs</h2>" + "".join(parts)


def _baselines(info: ProblemInfo) -> str:
    if not info.baselines:
        return ""
    rows = "".join(f'<tr><td class="text">{html.escape(str(b["name"]))}</td>'
                   f"<td>{_num(float(b['error']))}</td><td>{_num(float(b['cost']), 'g')}</td></tr>"
                   for b in info.baselines)
    return ("<h2>Baselines</h2><table><tr><th>name</th><th>error</th><th>cost</th></tr>"
            f"{rows}</table>")


def render_report(run: Run, info: ProblemInfo) -> str:
    """The report page of ``run`` as an HTML string."""
    groups = group_runs([run])
    name = run.path.resolve().name
    title = html.escape(f"{run.problem} \N{EM DASH} {name}")
    facts = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>"
                    for k, v in summary(run, info.target, info).items())
    chosen = chosen_row(run, info)
    note = f'<p class="note">{html.escape(info.note)}</p>' if info.note else ""
    config = html.escape(yaml.safe_dump(run.config, sort_keys=False, default_flow_style=False))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>evolve report: {title}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>evolve report: {title}</h1>
<p class="note">Run directory: {html.escape(str(run.path))}</p>
{note}
<h2>Summary</h2>
<table class="summary">{facts}</table>
<h2>Fitness</h2>
{_img(png_bytes(curves_figure(groups, [info])), "best error against generation, evaluations and wall time")}
<h2>Pareto front</h2>
{_img(png_bytes(front_figure(groups, [info])), "Pareto front of error against cost")}
{_front_table(run, info.target, chosen)}
{_best_programs(run, info.target, chosen)}
{_baselines(info)}
<h2>Configuration</h2>
<pre>{config}</pre>
</body>
</html>
"""


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the HTML report of the run in ``run_dir`` (default ``run_dir/report.html``)
    and return its path."""
    run = load_run(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(run, problem_info(run.problem, run.config)), encoding="utf-8")
    return out
