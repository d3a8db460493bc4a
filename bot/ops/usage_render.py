"""A `UsageReport` as a plain-text table (the terminal's `python -m bot report`; a cog may put it in a code block),
a CSV of the daily rows, and a PNG chart: daily images and cost, stacked by model.

The chart is drawn with matplotlib's object-oriented API on an Agg canvas (no pyplot, no global figure state), so
rendering is safe in a worker thread: a cog should call `render_png` through `asyncio.to_thread`, since drawing
takes tens of milliseconds. Every day of the period gets a bar per model, empty days included, so the x axis is
the calendar and not just the days that had images.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.ops.usage import UsageReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CSV_HEADER = ("day", "model", "provider", "images", "credits", "cost_usd", "billed_failures", "moderation_checks")


def usd(value: float) -> str:
    """Image prices are a few cents: three decimals keep a single image visible."""
    return f"${value:,.3f}"


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


@dataclass(frozen=True, slots=True)
class DailySeries:
    """The period's days and, per model, one value per day (0 where the model made nothing)."""

    days: list[str]
    images: dict[str, list[int]]
    cost_usd: dict[str, list[float]]


def daily_series(report: UsageReport) -> DailySeries:
    days = report.period.day_keys
    index = {day: n for n, day in enumerate(days)}
    images = {model: [0] * len(days) for model in report.models}
    cost = {model: [0.0] * len(days) for model in report.models}
    for row in report.daily:
        images[row.model][index[row.day]] += row.images
        cost[row.model][index[row.day]] += row.cost_usd
    return DailySeries(days, images, cost)


def csv_rows(report: UsageReport) -> list[tuple[str, str, str, int, float, float, int, int]]:
    """One row per day of the period and per model and provider seen in it, zeros included."""
    pairs = sorted({(row.model, row.provider) for row in report.daily})
    found = {(row.day, row.model, row.provider): row for row in report.daily}
    rows = []
    for day in report.period.day_keys:
        for model, provider in pairs:
            row = found.get((day, model, provider))
            rows.append(
                (day, model, provider, row.images, row.credits, round(row.cost_usd, 6), row.billed_failures, row.checks)
                if row
                else (day, model, provider, 0, 0.0, 0.0, 0, 0)
            )
    return rows


def to_csv(report: UsageReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_rows(report))
    return out.getvalue()


def scope_name(report: UsageReport) -> str:
    return "the whole bot" if report.guild_id is None else f"server {report.guild_id}"


def chart_figure(report: UsageReport) -> Figure:
    """Two panels sharing the calendar: images per day and cost per day, each stacked by model."""
    from matplotlib.figure import Figure  # imported when drawing: matplotlib takes a while to load

    series = daily_series(report)
    figure = Figure(figsize=(10, 6), dpi=100, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    x = list(range(len(series.days)))
    for axes, values, title in (
        (top, series.images, "Images per day"),
        (bottom, series.cost_usd, "Cost per day (USD)"),
    ):
        base = [0.0] * len(x)
        for model in report.models:
            heights = values[model]
            axes.bar(x, heights, bottom=base, label=model, width=0.8)
            base = [b + h for b, h in zip(base, heights, strict=True)]
        axes.set_title(title, loc="left", fontsize=10)
        axes.grid(axis="y", alpha=0.3)
    top.yaxis.get_major_locator().set_params(integer=True)
    step = max(1, len(x) // 10)  # at most about ten date labels
    bottom.set_xticks(x[::step], [day[5:] for day in series.days[::step]])
    if report.models:
        top.legend(loc="upper left", fontsize=8)
    figure.suptitle(f"Usage of {scope_name(report)}, {report.period.label}", fontsize=11)
    return figure


def render_png(report: UsageReport) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = chart_figure(report)
    FigureCanvasAgg(figure)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = []
    for row in (header, *rows):
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [cell.rjust(width) if n in right else cell.ljust(width) for n, (cell, width) in pairs]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def render_table(report: UsageReport) -> str:
    """The report as monospaced text; user ids stay numbers (a cog turns them into mentions itself)."""
    p = report.period
    span = p.last_day if p.days == 1 else f"{p.first_day} to {p.last_day}"
    lines = [
        f"Usage of {scope_name(report)}, {p.label} ({span})",
        f"Images {report.images} · credits {number(report.credits)} · cost {usd(report.cost_usd)}"
        + (f" · {report.billed_failures} failed but billed" if report.billed_failures else "")
        + (f" · {report.checks} moderation checks" if report.checks else "")
        + (f" · {report.held} running" if report.held else ""),
    ]
    if report.by_model:
        lines += ["", "By model"]
        models = [(m.model, m.provider, str(m.images), number(m.credits), usd(m.cost_usd)) for m in report.by_model]
        lines += _table(("model", "provider", "images", "credits", "cost"), models, {2, 3, 4})
    if report.busiest:
        lines += ["", "Busiest members"]
        members = [(str(m.user_id), str(m.images), number(m.credits), usd(m.cost_usd)) for m in report.busiest]
        lines += _table(("member", "images", "credits", "cost"), members, {1, 2, 3})
    sections: tuple[tuple[str, tuple[str, ...], list[tuple[str, ...]]], ...] = (
        (f"Refunds: {report.refunded}", ("reason", "count"), [(r.reason, str(r.count)) for r in report.refunds]),
        (
            f"Blocks: {report.blocked}",
            ("tier", "category", "count"),
            [(b.tier, b.category, str(b.count)) for b in report.blocks],
        ),
        (f"Failures: {report.failed}", ("error", "count"), [(f.reason, str(f.count)) for f in report.failures]),
    )
    for title, header, rows in sections:
        lines += ["", title]
        if rows:  # the count is the last column
            lines += _table(header, rows, {len(header) - 1})
    return "\n".join(lines) + "\n"
