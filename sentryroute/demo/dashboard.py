"""The chart's Grafana dashboard without Grafana or Prometheus: sample both programs' `/metrics` over a run and
evaluate the dashboard's own queries on those samples (for the README's picture, scripts/dashboard_picture.py).

Only the PromQL the dashboard uses is understood: `sum|max|count [by (labels)] (…)`, `rate(…[w])`,
`increase(…[w])`, a selector with `=`, `!=`, `=~` matchers (those naming a dashboard variable like
`$namespace` match everything), `time() - …`, `histogram_quantile(q, …)` and a number. Anything else raises
`Unsupported`, so a panel whose query this cannot evaluate fails loudly instead of drawing a wrong line.
Every sample gets the labels `job` and `pod` = the program it came from, standing in for Prometheus' target
labels.
"""

from __future__ import annotations

import math
import re
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]

#: The dashboard's `$__rate_interval`, in seconds, for a demo run that lasts about a minute.
RATE_WINDOW = 10.0


class Unsupported(ValueError):
    """A query outside the PromQL subset evaluated here."""


@dataclass
class Samples:
    """Scrapes of several `/metrics` endpoints: times, and per time every series' value."""

    epoch: float = 0.0  # Unix time of `times[i] == 0`, for `time()`
    times: list[float] = field(default_factory=list)
    values: list[dict[tuple[str, Labels], float]] = field(default_factory=list)

    def add(self, at: float, expositions: Mapping[str, str]) -> None:
        snapshot: dict[tuple[str, Labels], float] = {}
        for job, text in expositions.items():
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    labels = {**sample.labels, "job": job, "pod": job}
                    snapshot[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
        self.times.append(at)
        self.values.append(snapshot)

    def to_json(self) -> dict[str, Any]:
        values = [[[name, [list(pair) for pair in labels], v] for (name, labels), v in s.items()] for s in self.values]
        return {"epoch": self.epoch, "times": self.times, "values": values}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Samples:
        values = [
            {(name, tuple((str(k), str(v)) for k, v in labels)): float(value) for name, labels, value in snapshot}
            for snapshot in data["values"]
        ]
        return cls(epoch=float(data["epoch"]), times=[float(t) for t in data["times"]], values=values)


class Sampler:
    """Scrape `targets` (job → metrics URL) every `interval` seconds in a thread until stopped."""

    def __init__(self, targets: Mapping[str, str], *, interval: float = 1.0) -> None:
        self.started = time.time()
        self.targets, self.interval, self.samples = dict(targets), interval, Samples(epoch=self.started)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            expositions = {}
            for job, url in self.targets.items():
                try:
                    with urllib.request.urlopen(url, timeout=2) as resp:
                        expositions[job] = resp.read().decode()
                except OSError:
                    continue  # not up yet (or gone): a gap in the picture, not an error
            self.samples.add(time.time() - self.started, expositions)
            self._stop.wait(self.interval)


_AGGREGATE = re.compile(r"^(sum|max|count)(?: by \(([\w, ]*)\))? ?\((.*)\)$", re.DOTALL)
_RANGE_FUNCTION = re.compile(r"^(rate|increase)\((\w+)(\{[^}]*\})?\[[^\]]+\]\)$")
_SELECTOR = re.compile(r"^(\w+)(\{[^}]*\})?$")
_QUANTILE = re.compile(r"^histogram_quantile\(([\d.]+), (.*)\)$", re.DOTALL)
_MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')


def _matches(labels: Labels, matchers: str | None) -> bool:
    found = dict(labels)
    for name, op, value in _MATCHER.findall(matchers or ""):
        if "$" in value:
            continue  # a dashboard variable: "All"
        actual = found.get(name, "")
        if (
            (op == "=" and actual != value)
            or (op == "!=" and actual == value)
            or (op == "=~" and not re.fullmatch(value, actual))
        ):
            return False
    return True


def evaluate(query: str, samples: Samples, index: int) -> Vector:
    """The query's result at `samples.times[index]`: labels → value."""
    query = query.strip()
    if re.fullmatch(r"[\d.]+", query):
        return {(): float(query)}
    if match := re.fullmatch(r"time\(\) - (.*)", query, re.DOTALL):
        now = samples.epoch + samples.times[index]
        return {labels: now - value for labels, value in evaluate(match.group(1), samples, index).items()}
    if match := _QUANTILE.fullmatch(query):
        return _quantile(float(match.group(1)), evaluate(match.group(2), samples, index))
    if match := _AGGREGATE.fullmatch(query):
        how, by, inner = match.groups()
        keep = [name.strip() for name in (by or "").split(",") if name.strip()]
        groups: dict[Labels, list[float]] = {}
        for labels, value in evaluate(inner, samples, index).items():
            key = tuple((name, dict(labels).get(name, "")) for name in keep)
            groups.setdefault(key, []).append(value)
        if how == "sum":
            return {key: sum(values) for key, values in groups.items()}
        if how == "max":
            return {key: max(values) for key, values in groups.items()}
        return {key: float(len(values)) for key, values in groups.items()}
    if match := _RANGE_FUNCTION.fullmatch(query):
        function, name, matchers = match.groups()
        return _range(function, name, matchers, samples, index)
    if match := _SELECTOR.fullmatch(query):
        name, matchers = match.groups()
        snapshot = samples.values[index]
        return {labels: value for (n, labels), value in snapshot.items() if n == name and _matches(labels, matchers)}
    raise Unsupported(f"not in the evaluated PromQL subset: {query}")


def _range(function: str, name: str, matchers: str | None, samples: Samples, index: int) -> Vector:
    now = samples.times[index]
    start = next((i for i in range(index + 1) if samples.times[i] >= now - RATE_WINDOW), index)
    if start == index:
        return {}
    first, last = samples.values[start], samples.values[index]
    elapsed = now - samples.times[start]
    result: Vector = {}
    for (n, labels), value in last.items():
        if n != name or not _matches(labels, matchers):
            continue
        grown = value - first.get((n, labels), 0.0)
        grown = value if grown < 0 else grown  # a counter reset (a restart)
        result[labels] = grown / elapsed if function == "rate" else grown
    return result


def _quantile(q: float, buckets: Vector) -> Vector:
    """Prometheus' histogram_quantile over `le` buckets (linear interpolation inside the bucket)."""
    by_group: dict[Labels, list[tuple[float, float]]] = {}
    for labels, count in buckets.items():
        rest = tuple((k, v) for k, v in labels if k != "le")
        by_group.setdefault(rest, []).append((float(dict(labels)["le"]), count))
    result: Vector = {}
    for group, pairs in by_group.items():
        pairs.sort()
        total = pairs[-1][1]
        if total <= 0:
            continue
        rank, lower, below = q * total, 0.0, 0.0
        for bound, count in pairs:
            if count >= rank:
                if math.isinf(bound):
                    result[group] = lower
                else:
                    result[group] = lower + (bound - lower) * ((rank - below) / max(count - below, 1e-12))
                break
            lower, below = bound, count
    return result


def legend(template: str, labels: Labels) -> str:
    """Grafana's `{{label}}` legend format."""
    found = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: found.get(m.group(1), ""), template).strip() or "value"


def series(query: str, legend_format: str, samples: Samples) -> dict[str, tuple[list[float], list[float]]]:
    """legend → (times, values) of a query over the whole run."""
    lines: dict[str, tuple[list[float], list[float]]] = {}
    for index, at in enumerate(samples.times):
        for labels, value in evaluate(query, samples, index).items():
            times, values = lines.setdefault(legend(legend_format, labels), ([], []))
            times.append(at)
            values.append(value)
    return lines


def panel_queries(dashboard: Mapping[str, object]) -> Sequence[tuple[str, list[tuple[str, str]]]]:
    """(title, [(query, legend format)]) of every time-series panel of a Grafana dashboard."""
    panels = dashboard.get("panels", [])
    assert isinstance(panels, list)
    return [
        (panel["title"], [(t["expr"], t.get("legendFormat", "")) for t in panel.get("targets", [])])
        for panel in panels
        if panel.get("type") == "timeseries"
    ]
