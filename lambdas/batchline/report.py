"""report.html: the run's manifest as a page people look at, self-contained (no network needed to open it).

Everything comes from the manifest (batchline.summary's statistics included): the counts, each job's timeline,
the error reasons grouped, and each prediction column's distribution. Charts are pygal's SVG, inlined; pygal's
own ``<script>`` (a config object for its optional tooltips) and its comments are removed, so the page has no
script and no link at all. Every text from the run (values, reasons, keys, job messages) is escaped.
"""

from __future__ import annotations

import html
from typing import Any
from xml.etree import ElementTree

from batchline.clock import parse_time

# Chart labels are cut to this many characters (the tables beside them show the whole value).
LABEL_CHARS = 40
_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:960px;color:#222;
padding:0 1rem}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;
vertical-align:top}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600}.SUCCEEDED{color:#2e7d32}.PARTIALLY_SUCCEEDED{color:#ef6c00}.FAILED{color:#c62828}
.note{color:#666;font-size:.9rem}.chart{max-width:720px}code{word-break:break-all}
"""


def render_report(manifest: dict[str, Any]) -> str:
    """The page for one run's manifest (manifest.json's content, ``summary`` included)."""
    summary = manifest.get("summary") or {}
    status = str(manifest.get("status") or "")
    sections = [
        f"<h1>Batchline run {_e(manifest.get('runId'))}</h1>",
        _overview(manifest, status),
        _counts(manifest.get("counts") or {}),
        _jobs(manifest.get("jobs") or [], (manifest.get("timings") or {}).get("startedAt")),
        _errors(summary.get("errors")),
        _columns(summary.get("predictions")),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Batchline run {_e(manifest.get('runId'))}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(section for section in sections if section)
        + "\n</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _overview(manifest: dict[str, Any], status: str) -> str:
    timings = manifest.get("timings") or {}
    source = manifest.get("input") or {}
    error = manifest.get("error") or {}
    rows = [
        ("status", f'<span class="status {_e(status)}">{_e(status)}</span>'),
        ("pipeline", _e(manifest.get("pipeline"))),
        ("provider", _e(manifest.get("provider"))),
        ("runtime", _e(manifest.get("runtime"))),
        ("input", f"<code>s3://{_e(source.get('bucket'))}/{_e(source.get('key'))}</code>"),
        ("started", _e(timings.get("startedAt"))),
        ("finished", _e(timings.get("finishedAt"))),
        ("duration", _e(_seconds(timings.get("durationSeconds")))),
    ]
    rows += [(name, f"<code>{_e(uri)}</code>") for name, uri in (manifest.get("outputs") or {}).items() if uri]
    if error:
        rows.append(("error", f"{_e(error.get('error'))}: {_e(error.get('cause'))}"))
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f"<table>{body}</table>"


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    seconds = float(value)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


COUNT_NAMES = ("input", "sent", "predicted", "failed", "rejected")


def _counts(counts: dict[str, Any]) -> str:
    head = "".join(f'<th class="n">{name}</th>' for name in COUNT_NAMES)
    cells = "".join(f'<td class="n">{_e(counts.get(name, "-"))}</td>' for name in COUNT_NAMES)
    return (
        "<h2>Records</h2><table><tr>" + head + "</tr><tr>" + cells + "</tr></table>"
        '<p class="note">input = predicted + failed + rejected; sent = predicted + failed.</p>'
    )


def _offset(moment: str | None, start: str | None) -> float | None:
    if not moment or not start:
        return None
    try:
        return max(0.0, (parse_time(moment) - parse_time(start)).total_seconds())
    except ValueError:
        return None


# A run of thousands of jobs keeps a page that opens: the table and the timeline show the first ones.
TABLE_JOBS = 200
TIMELINE_JOBS = 50


def _jobs(all_jobs: list[dict[str, Any]], run_started: str | None) -> str:
    if not all_jobs:
        return "<h2>Jobs</h2><p>No service job was submitted.</p>"
    jobs = all_jobs[:TABLE_JOBS]
    more = ""
    if len(all_jobs) > TABLE_JOBS:
        more = f'<p class="note">The first {TABLE_JOBS} of {len(all_jobs)} jobs; manifest.json lists every one.</p>'

    head = "<tr><th>job</th><th>status</th><th>submitted</th><th>started</th><th>ended</th>"
    head += '<th class="n">polls</th><th>last checked</th><th>message</th></tr>'
    rows = []
    for job in jobs:
        figures = job.get("figures") or {}
        status = f"{job.get('status')} ({job.get('rawStatus')})" if job.get("rawStatus") else job.get("status")
        rows.append(
            f"<tr><td><code>{_e(job.get('jobId'))}</code></td><td>{_e(status)}</td>"
            f"<td>{_e(figures.get('createdAt') or '-')}</td><td>{_e(figures.get('startedAt') or '-')}</td>"
            f'<td>{_e(figures.get("endedAt") or "-")}</td><td class="n">{_e(job.get("pollCount", "-"))}</td>'
            f"<td>{_e(job.get('checkedAt') or '-')}</td><td>{_e(job.get('message') or '')}</td></tr>"
        )
    timeline = _timeline(jobs[:TIMELINE_JOBS], run_started)
    return "<h2>Jobs</h2>" + more + timeline + "<table>" + head + "".join(rows) + "</table>"


def _timeline(jobs: list[dict[str, Any]], run_started: str | None) -> str:
    """Seconds from the run's start: waiting to be submitted, queued at the service, running."""
    bars = []
    for job in jobs:
        figures = job.get("figures") or {}
        created = _offset(figures.get("createdAt"), run_started)
        started = _offset(figures.get("startedAt"), run_started)
        ended = _offset(figures.get("endedAt") or job.get("checkedAt"), run_started)
        if created is None or ended is None:
            continue
        started = created if started is None else started
        bars.append((str(job.get("jobId") or "-"), created, max(0.0, started - created), max(0.0, ended - started)))
    if not bars:
        return '<p class="note">The service reported no times for these jobs.</p>'
    pygal = _pygal()
    from pygal.style import Style

    style = Style(colors=("transparent", "#f0ad4e", "#337ab7"), background="white", plot_background="white")
    chart = pygal.HorizontalStackedBar(
        js=[],
        style=style,
        width=720,
        height=120 + 30 * len(bars),
        x_title="seconds from the run's start",
        legend_at_bottom=True,
    )
    bars.reverse()  # a horizontal chart draws its first bar at the bottom: the first job goes on top
    chart.x_labels = [_label(name) for name, *_ in bars]
    chart.add("before submission", [created for _, created, _, _ in bars])
    chart.add("queued", [queued for _, _, queued, _ in bars])
    chart.add("running", [running for *_, running in bars])
    return _svg(chart)


def _errors(errors: dict[str, Any] | None) -> str:
    if not errors:
        return ""
    groups = errors.get("groups") or []
    if not groups:
        return "<h2>Errors</h2><p>No record failed or was rejected.</p>"
    head = '<tr><th>stage</th><th>reason</th><th class="n">rows</th><th>example (line, key, reason)</th></tr>'
    rows = []
    for group in groups:
        example = group.get("example") or {}
        rows.append(
            f"<tr><td>{_e(group.get('stage'))}</td><td>{_e(group.get('reason'))}</td>"
            f'<td class="n">{_e(group.get("count"))}</td><td>line {_e(example.get("line"))}, key '
            f"<code>{_e(example.get('key'))}</code>: {_e(example.get('reason'))}</td></tr>"
        )
    note = "" if errors.get("complete", True) else '<p class="note">Partial: the time budget ended the reading.</p>'
    return f"<h2>Errors ({_e(errors.get('rows'))} rows of errors.csv)</h2>{note}<table>{head}{''.join(rows)}</table>"


def _columns(predictions: dict[str, Any] | None) -> str:
    if not predictions:
        return ""
    parts = [f"<h2>Predictions ({_e(predictions.get('rows'))} rows of predictions.csv)</h2>"]
    if not predictions.get("complete", True):
        parts.append('<p class="note">Partial: the time budget ended the reading of predictions.csv.</p>')
    for column in predictions.get("columns") or []:
        parts.append(f"<h3>{_e(column.get('name'))} ({_e(column.get('kind'))})</h3>")
        parts.append(_numeric(column) if column.get("kind") == "numeric" else _text(column))
    return "\n".join(parts)


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}"


def _numeric(column: dict[str, Any]) -> str:
    stats = [
        ("numbers", column.get("count")),
        ("blank", column.get("blanks")),
        ("NaN or infinite", column.get("nonFinite")),
        ("min", _number(column.get("min"))),
        ("mean", _number(column.get("mean"))),
        ("max", _number(column.get("max"))),
    ]
    table = _stats_table(stats)
    bins = column.get("histogram") or []
    if not bins:
        return table
    pygal = _pygal()
    chart = pygal.Bar(
        js=[], width=720, height=300, show_legend=False, x_label_rotation=30, y_title="rows", style=_plain()
    )
    chart.x_labels = [f"{_number(b['start'])}–{_number(b['end'])}" for b in bins]
    chart.add(str(column.get("name")), [b["count"] for b in bins])
    return table + _svg(chart)


def _text(column: dict[str, Any]) -> str:
    stats = [("values", column.get("count")), ("blank", column.get("blanks"))]
    stats.append(("distinct", column.get("distinct") if column.get("distinct") is not None else "more than tracked"))
    table = _stats_table(stats)
    top = column.get("topValues") or []
    if column.get("approximate"):
        table += (
            '<p class="note">Approximate: too many distinct values to count each; every count below may be low '
            f"by up to {_e(column.get('maxUndercount'))}.</p>"
        )
    if not top:
        return table
    rows = "".join(f'<tr><td><code>{_e(t["value"])}</code></td><td class="n">{_e(t["count"])}</td></tr>' for t in top)
    pygal = _pygal()
    chart = pygal.HorizontalBar(
        js=[], width=720, height=100 + 28 * len(top), show_legend=False, x_title="rows", style=_plain()
    )
    chart.x_labels = [_label(t["value"]) for t in reversed(top)]
    chart.add(str(column.get("name")), [t["count"] for t in reversed(top)])
    return table + _svg(chart) + f'<table><tr><th>value</th><th class="n">rows</th></tr>{rows}</table>'


def _stats_table(stats: list[tuple[str, Any]]) -> str:
    head = "".join(f'<th class="n">{_e(name)}</th>' for name, _ in stats)
    cells = "".join(f'<td class="n">{_e(value)}</td>' for _, value in stats)
    return f"<table><tr>{head}</tr><tr>{cells}</tr></table>"


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _pygal() -> Any:
    """pygal, imported when a chart is drawn (0.3 s), on the standard library's ElementTree even where lxml is
    installed: _svg edits the tree it renders."""
    import pygal
    from pygal.etree import etree

    etree.to_etree()
    return pygal


def _plain() -> Any:
    from pygal.style import Style

    return Style(colors=("#337ab7",), background="white", plot_background="white")


def _svg(chart: Any) -> str:
    """The chart's SVG without pygal's script and comments (pygal escapes every label as XML text)."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if not isinstance(child.tag, str) or child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return '<div class="chart">' + ElementTree.tostring(tree, encoding="unicode") + "</div>"
