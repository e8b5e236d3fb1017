"""Per-image results → the numbers a paper reports: means over images, NaN accounting, tables.

Above :mod:`.protocols` (a table's title describes the protocol its numbers were computed under).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .metrics import ALL_METRICS, BOUNDARY_METRICS, DISPLAY_NAMES, EDGE_METRICS, HIGHER_IS_BETTER, NO_DIRECTION, TABLE_METRICS
from .protocols import PROTOCOLS

__all__ = ["AggregateResult", "aggregate_results", "format_results_table"]


@dataclass(frozen=True)
class AggregateResult:
    """Mean of per-image metrics over a test set, with the protocol it was computed under.

    Attributes:
        protocol: protocol name (e.g. ``"bore_kitti"``); stored with every result.
        num_images: number of per-image results aggregated.
        means: metric name -> mean over images (nanmean for the keys in ``nan_skipped``).
        num_nan: metric name -> number of images whose value was NaN (skipped by nanmean, or
            making the plain mean NaN).
        nan_skipped: metric names averaged with nanmean.
    """

    protocol: str
    num_images: int
    means: dict[str, float]
    num_nan: dict[str, int]
    nan_skipped: tuple[str, ...] = field(default=BOUNDARY_METRICS + EDGE_METRICS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN stays float('nan'); json.dump writes it as NaN)."""
        return {"protocol": self.protocol, "num_images": self.num_images,
                "means": dict(self.means), "num_nan": dict(self.num_nan),
                "nan_skipped": list(self.nan_skipped)}


def aggregate_results(results: Sequence[Mapping[str, Any]], protocol: str | None = None,
                      nan_skipped: Sequence[str] | Literal["all"] = BOUNDARY_METRICS + EDGE_METRICS) -> AggregateResult:
    """Arithmetic mean of per-image metric dicts (never a pooled mean: the book's appendix "Reference", metrics).

    Args:
        results: one dict per image, as returned by
            :func:`bore_depth_lite.protocols.evaluate_image`; every dict carries the same
            metric keys and, unless ``protocol`` is given, a ``"protocol"`` key.
        protocol: protocol name for results that do not carry one.
        nan_skipped: metrics averaged with nanmean (default: the boundary errors, which are
            NaN for an image without GT edges, as iBims-1 does); ``"all"`` for every metric.
            Other metrics use the plain mean, so a NaN there makes the mean NaN.

    Raises:
        ValueError: no result, mixed protocols, missing protocol name, or inconsistent keys.
    """
    if len(results) == 0:
        raise ValueError("results is empty: nothing to aggregate")
    names = {r.get("protocol", protocol) for r in results}
    if None in names:
        raise ValueError("every result must carry its protocol name (key 'protocol') "
                         "or pass protocol=...")
    if len(names) != 1:
        raise ValueError(f"results mix protocols {sorted(names)}; aggregate each protocol separately")
    if protocol is not None and names != {protocol}:
        raise ValueError(f"protocol={protocol!r} but the results say {sorted(names)}")
    keys = [k for k in ALL_METRICS if k in results[0]]
    for i, r in enumerate(results):
        have = [k for k in ALL_METRICS if k in r]
        if have != keys:
            raise ValueError(f"results[{i}] has metrics {have}, results[0] has {keys}")
    skip = set(ALL_METRICS if nan_skipped == "all" else nan_skipped)
    means: dict[str, float] = {}
    num_nan: dict[str, int] = {}
    for k in keys:
        values = np.array([float(r[k]) for r in results], dtype=np.float64)
        nan = np.isnan(values)
        num_nan[k] = int(nan.sum())
        if k in skip:
            means[k] = float(np.mean(values[~nan])) if (~nan).any() else math.nan
        else:
            means[k] = float(np.mean(values))
    return AggregateResult(names.pop(), len(results), means, num_nan,
                           tuple(k for k in ALL_METRICS if k in skip))


def format_results_table(rows: AggregateResult | Mapping[str, AggregateResult],
                         metrics: Sequence[str] | None = None,
                         style: Literal["markdown", "text"] = "markdown", digits: int = 3) -> str:
    """A results table whose first line names the protocol(s).

    Args:
        rows: one :class:`AggregateResult`, or ``{row label: AggregateResult}`` (e.g. one row
            per model). Rows under different protocols get a ``protocol`` column.
        metrics: metric keys to show, in order (default: those present, in
            :data:`ALL_METRICS` order).
        style: ``"markdown"`` (pipe table) or ``"text"`` (aligned columns).
        digits: decimals printed.

    Returns:
        The table; a footnote lists metrics for which images were NaN.
    """
    if isinstance(rows, AggregateResult):
        rows = {"result": rows}
    if not rows:
        raise ValueError("rows is empty: nothing to format")
    if style not in ("markdown", "text"):
        raise ValueError(f"style must be 'markdown' or 'text', got {style!r}")
    results = list(rows.values())
    if metrics is None:
        metrics = [k for k in TABLE_METRICS if any(k in r.means for r in results)]
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"metrics {unknown} are unknown; choose from {ALL_METRICS}")
    protocols = sorted({r.protocol for r in results})
    header = ["model"] + (["protocol"] if len(protocols) > 1 else []) + ["images"]
    header += [DISPLAY_NAMES[m] + ("" if m in NO_DIRECTION else "↑" if m in HIGHER_IS_BETTER else "↓") for m in metrics]
    body = []
    for label, r in rows.items():
        line = [str(label)] + ([r.protocol] if len(protocols) > 1 else []) + [str(r.num_images)]
        line += [f"{r.means[m]:.{digits}f}" if m in r.means else "—" for m in metrics]
        body.append(line)
    title = "Protocol: " + "; ".join(_describe_protocol(p) for p in protocols)
    if style == "markdown":
        table = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        table += ["| " + " | ".join(line) + " |" for line in body]
    else:
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        table = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in [header] + body]
    notes = [f"{label}: {DISPLAY_NAMES[m]} NaN for {r.num_nan[m]}/{r.num_images} images"
             + (" (skipped by nanmean)" if m in r.nan_skipped else "")
             for label, r in rows.items() for m in metrics if r.num_nan.get(m, 0)]
    return "\n".join([title, ""] + table + ([""] + notes if notes else []))


def _describe_protocol(name: str) -> str:
    return PROTOCOLS[name].describe() if name in PROTOCOLS else name
