"""Cloud Monitoring v3 ``projects.timeSeries.list`` over the requests the data plane really served.

Canary analysis reads ``run.googleapis.com/request_count`` and ``run.googleapis.com/request_latencies``
from Cloud Monitoring; to test it end to end the emulator answers the same query with the same
labels, aggregation semantics and JSON shapes (int64 as strings, RFC 3339 times) as Google's API,
computed from the ``RequestSample`` list. The function is pure so it can be tested without a server.

Ingestion is modelled as Google documents it for Cloud Run metrics: requests are sampled in
``sampling``-second windows (60 s) aligned on the epoch, and a window's point becomes visible
``lag`` seconds after the window closes (Google: "up to 180 seconds"; the emulator uses the worst
case, deterministically). Requests not yet visible are not counted. Tests scale both down through
``POST /_emulator/config`` (``metric_sampling``, ``metric_lag``).

Unaligned output (``ALIGN_NONE``) has one point per sampling window; aligned periods end at
``interval.endTime`` and go back ``alignmentPeriod`` at a time. Only requests inside
``[startTime, endTime]`` are counted, and periods without data produce no point. Results are paged
with ``pageSize``/``pageToken`` and ``nextPageToken`` as the v3 API does.
"""

from __future__ import annotations

import base64
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cloudrun_emulator.dataplane import RequestSample
from cloudrun_emulator.projects import project_id, project_key, project_number

REQUEST_COUNT = "run.googleapis.com/request_count"
REQUEST_LATENCIES = "run.googleapis.com/request_latencies"
RESOURCE_TYPE = "cloud_run_revision"
SAMPLING_SECONDS = 60.0  # "sampled every 60 seconds" (Google Cloud metrics list, run.googleapis.com)
METRIC_LAG_SECONDS = 180.0  # "After sampling, data is not visible for up to 180 seconds."
MAX_PAGE_SIZE = 100_000  # "If empty or more than 100,000 results, the effective page size is 100000"
MIN_ALIGNMENT_SECONDS = 60.0  # "The value must be at least 60 seconds" (monitoring.v3.json)
RAW_PERIOD_SECONDS = 60.0  # Cloud Run writes one point a minute: the period of unaligned output
MAX_POINTS = 100_000  # guards against a tiny period over a huge interval
BUCKETS = {"numFiniteBuckets": 64, "growthFactor": 1.4, "scale": 1.0}  # request_latencies buckets (ms)

COUNT_ALIGNERS = frozenset({"ALIGN_NONE", "ALIGN_DELTA", "ALIGN_SUM", "ALIGN_RATE"})
LATENCY_ALIGNERS = frozenset(
    {
        "ALIGN_NONE",
        "ALIGN_DELTA",
        "ALIGN_SUM",
        "ALIGN_MEAN",
        "ALIGN_COUNT",
        "ALIGN_PERCENTILE_99",
        "ALIGN_PERCENTILE_95",
        "ALIGN_PERCENTILE_50",
        "ALIGN_PERCENTILE_05",
    }
)
PERCENTILES = {"99": 99.0, "95": 95.0, "50": 50.0, "05": 5.0}
SUPPORTED_REDUCERS = frozenset(
    {"REDUCE_NONE", "REDUCE_SUM", "REDUCE_MEAN", "REDUCE_MIN", "REDUCE_MAX", "REDUCE_COUNT"}
    | {f"REDUCE_PERCENTILE_{p}" for p in PERCENTILES}
)
ALL_ALIGNERS = (
    COUNT_ALIGNERS
    | LATENCY_ALIGNERS
    | {
        "ALIGN_INTERPOLATE",
        "ALIGN_NEXT_OLDER",
        "ALIGN_MIN",
        "ALIGN_MAX",
        "ALIGN_STDDEV",
        "ALIGN_COUNT_TRUE",
        "ALIGN_COUNT_FALSE",
        "ALIGN_FRACTION_TRUE",
        "ALIGN_PERCENT_CHANGE",
    }
)
ALL_REDUCERS = SUPPORTED_REDUCERS | {
    "REDUCE_STDDEV",
    "REDUCE_COUNT_TRUE",
    "REDUCE_COUNT_FALSE",
    "REDUCE_FRACTION_TRUE",
}
METRICS = {REQUEST_COUNT: ("1", COUNT_ALIGNERS), REQUEST_LATENCIES: ("ms", LATENCY_ALIGNERS)}

_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))"
)
_DURATION = re.compile(r"(\d{1,12})(?:\.(\d{1,9}))?s")
_LABEL_FIELD = r"(?:metric|resource)\.(?:type|labels\.[A-Za-z_][A-Za-z0-9_]*)"
# ``project``: the project selector, "project-id-or-number" (https://cloud.google.com/monitoring/api/v3/filters).
_FIELD = rf"(?:project|{_LABEL_FIELD})"
_STRING = r'"(?:[^"\\]|\\.)*"'
_TERM = re.compile(
    rf"\s*(?P<field>{_FIELD})\s*(?P<op>!=|=)\s*"
    rf"(?:(?P<value>{_STRING})|(?P<func>one_of|starts_with|ends_with)\s*\((?P<args>\s*{_STRING}"
    rf"(?:\s*,\s*{_STRING})*)\s*\))"
)
_AND = re.compile(r"\s+AND\s+|\s*(?<=[\")])AND(?=[\s(\w])\s*", re.IGNORECASE)
_GROUP_FIELD = re.compile(_LABEL_FIELD)

# An aligned value: an int (counts), a float, or the latencies in the period (a distribution).
Value = int | float | list[float]


class QueryError(Exception):
    """A refused query: HTTP status, gRPC status name and message, as Google words them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        """Google's error shape."""
        return {"error": {"code": self.status, "message": self.message, "status": self.code}}


def _invalid(message: str) -> QueryError:
    return QueryError(400, "INVALID_ARGUMENT", message)


def _bad_value(param: str, proto: str, value: str) -> QueryError:
    """The message gRPC transcoding gives for a query parameter that does not parse."""
    name = re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), param)
    return _invalid(f"Invalid value at '{name}' ({proto}), \"{value}\"")


# ---- query parsing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterTerm:
    """One ``field op value`` term of a monitoring filter."""

    field: str
    negate: bool
    func: str  # "equals", "one_of", "starts_with", "ends_with"
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """A missing label never matches (like Google), whatever the operator."""
        actual = labels.get(self.field)
        if actual is None:
            return False
        tests: dict[str, Callable[[str], bool]] = {
            "equals": lambda v: actual == v,
            "one_of": lambda v: actual == v,
            "starts_with": actual.startswith,
            "ends_with": actual.endswith,
        }
        hit = any(tests[self.func](v) for v in self.values)
        return hit != self.negate


@dataclass(frozen=True)
class Query:
    """A parsed ``timeSeries.list`` request."""

    metric: str
    conditions: tuple[FilterTerm, ...]
    start: float
    end: float
    period: float
    aligner: str
    reducer: str
    group_by: tuple[str, ...]
    headers_only: bool
    page_size: int = MAX_PAGE_SIZE
    page_token: str = ""

    @property
    def raw(self) -> bool:
        """Unaligned: one point per sampling window."""
        return self.aligner == "ALIGN_NONE"


@dataclass(frozen=True)
class Ingestion:
    """When a served request shows up in Cloud Monitoring: sampling window, then ingestion lag."""

    sampling: float = SAMPLING_SECONDS
    lag: float = METRIC_LAG_SECONDS

    def window(self, when: float) -> tuple[float, float]:
        """The sampling window holding a request made at ``when``."""
        if self.sampling <= 0:
            return when, when
        start = math.floor(when / self.sampling) * self.sampling
        return start, start + self.sampling

    def visible(self, when: float, now: float) -> bool:
        """Whether a request made at ``when`` has been ingested by ``now``."""
        return self.window(when)[1] + self.lag <= now


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse_filter(text: str) -> tuple[FilterTerm, ...]:
    """AND-joined ``field = "v"``, ``!=``, ``one_of(...)``, ``starts_with(...)``, ``ends_with(...)``."""
    conditions: list[FilterTerm] = []
    pos, text = 0, text.strip()
    while True:
        match = _TERM.match(text, pos)
        if not match:
            raise _invalid(f"The filter could not be parsed at position {pos}: {text[pos : pos + 40]!r}")
        if match["value"] is not None:
            values: tuple[str, ...] = (_unquote(match["value"]),)
            func = "equals"
        else:
            values = tuple(_unquote(v) for v in re.findall(_STRING, match["args"]))
            func = match["func"]
        if match["field"] == "project":  # an ID or a number names the same project
            values = tuple(project_key(v) for v in values)
        conditions.append(FilterTerm(match["field"], match["op"] == "!=", func, values))
        pos = match.end()
        if pos >= len(text.rstrip()):
            return tuple(conditions)
        joiner = _AND.match(text, pos)
        if not joiner:
            raise _invalid(f"The filter could not be parsed at position {pos}: expected AND")
        pos = joiner.end()


def parse_timestamp(value: str, param: str) -> float:
    """RFC 3339 to epoch seconds, refusing what Google's Timestamp parser refuses."""
    match = _TIMESTAMP.fullmatch(value.strip())
    if not match:
        raise _bad_value(param, "type.googleapis.com/google.protobuf.Timestamp", value)
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise _bad_value(param, "type.googleapis.com/google.protobuf.Timestamp", value) from None
    offset = 0 if match[8] else (int(match[10]) * 60 + int(match[11])) * (1 if match[9] == "+" else -1)
    fraction = float("0." + match[7]) if match[7] else 0.0
    return moment.timestamp() + fraction - offset * 60


def format_timestamp(epoch: float) -> str:
    """Epoch seconds as Google writes them: UTC, ``Z``, fraction only when there is one."""
    moment = datetime.fromtimestamp(epoch, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_duration(value: str, param: str) -> float:
    """A protobuf Duration in JSON form, e.g. ``60s`` or ``1.5s``."""
    match = _DURATION.fullmatch(value.strip())
    if not match:
        raise _bad_value(param, "type.googleapis.com/google.protobuf.Duration", value)
    return int(match[1]) + (float("0." + match[2]) if match[2] else 0.0)


def _one(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    """A singular parameter: the last value given, like gRPC transcoding."""
    values = query.get(name)
    return values[-1] if values else None


def _enum(query: Mapping[str, Sequence[str]], name: str, allowed: frozenset[str], default: str) -> str:
    value = _one(query, name)
    if value is None or value == "":
        return default
    if value not in allowed:
        proto = "Reducer" if "Reducer" in name else "Aligner"
        raise _bad_value(name, f"type.googleapis.com/google.monitoring.v3.Aggregation.{proto}", value)
    return value


def _metric_type(conditions: Sequence[FilterTerm]) -> str:
    """The filter must name exactly one metric type, with ``=``."""
    types = [c for c in conditions if c.field == "metric.type"]
    if len(types) != 1 or types[0].negate or types[0].func != "equals":
        raise _invalid('The filter must specify exactly one metric type, e.g. metric.type = "...".')
    metric = types[0].values[0]
    if metric not in METRICS:
        raise QueryError(404, "NOT_FOUND", f'Cannot find metric(s) that match type = "{metric}".')
    return metric


def _interval(query: Mapping[str, Sequence[str]]) -> tuple[float, float]:
    end_text = _one(query, "interval.endTime")
    if not end_text:
        raise _invalid("Field interval.endTime is required.")
    end = parse_timestamp(end_text, "interval.endTime")
    start_text = _one(query, "interval.startTime")
    start = parse_timestamp(start_text, "interval.startTime") if start_text else end
    if start > end:
        raise _invalid("The start time must be before or equal to the end time.")
    return start, end


def _aggregation(query: Mapping[str, Sequence[str]], metric: str) -> tuple[str, str, float]:
    """Aligner, reducer and period, with Google's rules on which needs which."""
    aligner = _enum(query, "aggregation.perSeriesAligner", frozenset(ALL_ALIGNERS), "ALIGN_NONE")
    reducer = _enum(query, "aggregation.crossSeriesReducer", frozenset(ALL_REDUCERS), "REDUCE_NONE")
    unit, aligners = METRICS[metric]
    if aligner not in aligners:
        kind = "DISTRIBUTION" if unit == "ms" else "INT64"
        raise _invalid(f"The aligner {aligner} cannot be applied to metrics with kind DELTA and type {kind}.")
    if reducer not in SUPPORTED_REDUCERS:
        raise _invalid(f"The reducer {reducer} is not supported by the emulator.")
    if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
        raise _invalid("A per-series aligner other than ALIGN_NONE is required with a cross-series reducer.")
    period_text = _one(query, "aggregation.alignmentPeriod")
    if aligner == "ALIGN_NONE":
        return aligner, reducer, RAW_PERIOD_SECONDS
    if not period_text:
        raise _invalid("An alignment period is required with a per-series aligner other than ALIGN_NONE.")
    period = parse_duration(period_text, "aggregation.alignmentPeriod")
    if period < MIN_ALIGNMENT_SECONDS:
        raise _invalid(f"The alignment period must be at least 60 seconds; got {period_text}.")
    return aligner, reducer, period


def parse_query(query: Mapping[str, Sequence[str]]) -> Query:
    """Every parameter checked; QueryError says which one is wrong."""
    text = _one(query, "filter")
    if not text or not text.strip():
        raise _invalid("Field filter is required.")
    conditions = parse_filter(text)
    metric = _metric_type(conditions)
    start, end = _interval(query)
    aligner, reducer, period = _aggregation(query, metric)
    group_by = tuple(query.get("aggregation.groupByFields") or ())
    for field in group_by:
        if not _GROUP_FIELD.fullmatch(field):
            raise _invalid(f'Field aggregation.groupByFields had an invalid value of "{field}".')
    view = _one(query, "view") or "FULL"
    if view not in ("FULL", "HEADERS"):
        raise _bad_value(
            "view", "type.googleapis.com/google.monitoring.v3.ListTimeSeriesRequest.TimeSeriesView", view
        )
    if (end - start) / period > MAX_POINTS:
        raise _invalid("The interval holds too many alignment periods; use a longer alignmentPeriod.")
    size_text = _one(query, "pageSize") or "0"
    if not re.fullmatch(r"\d{1,9}", size_text):
        raise _bad_value("pageSize", "TYPE_INT32", size_text)
    size = int(size_text)
    page_size = MAX_PAGE_SIZE if size <= 0 or size > MAX_PAGE_SIZE else size
    token = _one(query, "pageToken") or ""
    return Query(
        metric,
        conditions,
        start,
        end,
        period,
        aligner,
        reducer,
        group_by,
        view == "HEADERS",
        page_size,
        token,
    )


# ---- raw series --------------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]


@dataclass
class Series:
    """One time series: its resource and metric labels and its values by period index."""

    resource: dict[str, str]
    metric: dict[str, str]
    points: dict[int, Value]


def _of_project(sample: RequestSample, project: str) -> bool:
    """Whether a request was served in ``project`` (its ID or number): a project's time series hold
    its own revisions only, however many projects name a revision alike."""
    if not sample.namespace:
        return True  # an instance started outside any project (the data plane on its own)
    owner = sample.namespace.partition("/")[0]  # the store's namespaces start with the project number
    return owner == project or (not project.isdigit() and owner == project_number(project))


def _labels(sample: RequestSample, project: str, location: str) -> tuple[dict[str, str], dict[str, str]]:
    """The resource and metric labels Cloud Run attaches to one request (its revision's region, or
    ``location`` for an instance started outside any project)."""
    region = sample.namespace.partition("/")[2]
    resource = {
        "project_id": project_id(project),
        "location": region or location,
        "service_name": sample.service,
        "revision_name": sample.revision,
        "configuration_name": sample.service,
    }
    metric = {"response_code": str(sample.status), "response_code_class": f"{sample.status // 100}xx"}
    return resource, metric


def _key(resource: Mapping[str, str], metric: Mapping[str, str]) -> Labels:
    """A hashable identity for a series' labels."""
    return tuple(sorted(_filter_view("", resource, metric).items()))


def _filter_view(metric: str, resource: Mapping[str, str], labels: Mapping[str, str]) -> dict[str, str]:
    """The fields a filter can test, keyed as the filter names them."""
    view = {"metric.type": metric, "resource.type": RESOURCE_TYPE}
    if "project_id" in resource:
        view["project"] = project_key(resource["project_id"])
    view.update({f"resource.labels.{k}": v for k, v in resource.items()})
    view.update({f"metric.labels.{k}": v for k, v in labels.items()})
    return view


def _series_key(
    q: Query,
    sample: RequestSample,
    project: str,
    location: str,
    series: dict[Labels, tuple[dict[str, str], dict[str, str], dict[int, list[RequestSample]]]],
) -> Labels | None:
    """The series a request counts in (added to ``series`` if new), or None when the query's project
    or filter leaves it out."""
    if not _of_project(sample, project):
        return None
    resource, metric = _labels(sample, project, location)
    if not all(c.matches(_filter_view(q.metric, resource, metric)) for c in q.conditions):
        return None
    key = _key(resource, metric)
    series.setdefault(key, (resource, metric, {}))
    return key


def _raw_series(
    q: Query, samples: Sequence[RequestSample], project: str, location: str, now: float, ingestion: Ingestion
) -> dict[Labels, tuple[dict[str, str], dict[str, str], dict[int, list[RequestSample]]]]:
    """Ingested requests inside the interval, by series and by period (0 = the newest aligned
    period; for unaligned output the sampling window's number)."""
    series: dict[Labels, tuple[dict[str, str], dict[str, str], dict[int, list[RequestSample]]]] = {}
    # Requests alike in project, revision and status share their labels and the filter's verdict:
    # worked out once per query for each such group (a session's emulator holds many thousands).
    matched: dict[tuple[str, str, str, int], Labels | None] = {}
    for sample in samples:
        if not q.start <= sample.time <= min(q.end, now) or not ingestion.visible(sample.time, now):
            continue
        group = (sample.namespace, sample.service, sample.revision, sample.status)
        if group not in matched:
            matched[group] = _series_key(q, sample, project, location, series)
        key = matched[group]
        if key is None:
            continue
        entry = series[key]
        # A request exactly at startTime on a period boundary belongs to the oldest period.
        index = (
            _window_number(ingestion, sample.time)
            if q.raw
            else min(
                int((q.end - sample.time) // q.period), max(0, math.ceil((q.end - q.start) / q.period) - 1)
            )
        )
        entry[2].setdefault(index, []).append(sample)
    return series


# ---- alignment and reduction -------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (what a dense distribution converges to)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def _align(metric: str, aligner: str, period: float, requests: list[RequestSample]) -> Value:
    """One series' value over one period."""
    if metric == REQUEST_COUNT:
        return len(requests) / period if aligner == "ALIGN_RATE" else len(requests)
    latencies = [r.latency_ms for r in requests]
    if aligner.startswith("ALIGN_PERCENTILE_"):
        return percentile(latencies, PERCENTILES[aligner.rsplit("_", 1)[1]])
    if aligner == "ALIGN_MEAN":
        return statistics.fmean(latencies)
    if aligner == "ALIGN_COUNT":
        return len(latencies)
    return latencies  # ALIGN_NONE / ALIGN_DELTA / ALIGN_SUM keep the distribution


def _numbers(values: Sequence[Value]) -> list[float]:
    """Distributions flattened to their samples, numbers as they are."""
    out: list[float] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def _reduce(reducer: str, values: Sequence[Value]) -> Value:
    """Combine the aligned values of several series at one period."""
    if reducer.startswith("REDUCE_PERCENTILE_"):
        return percentile(_numbers(values), PERCENTILES[reducer.rsplit("_", 1)[1]])
    if reducer == "REDUCE_COUNT":
        return len(values)
    if reducer == "REDUCE_MEAN":
        return statistics.fmean(_numbers(values))
    if isinstance(values[0], list):
        if reducer == "REDUCE_SUM":
            return _numbers(values)
        raise _invalid(f"The reducer {reducer} cannot be applied to DISTRIBUTION values.")
    numbers = [v for v in values if not isinstance(v, list)]
    if reducer == "REDUCE_MIN":
        return min(numbers)
    return max(numbers) if reducer == "REDUCE_MAX" else sum(numbers)


def _group_key(series: Series, fields: Sequence[str]) -> tuple[dict[str, str], dict[str, str]]:
    """The labels a group keeps: the grouped ones (project_id always stays on the resource)."""
    resource = {"project_id": series.resource["project_id"]}
    metric: dict[str, str] = {}
    for field in fields:
        kind, _, label = field.partition(".labels.")
        source, target = (series.resource, resource) if kind == "resource" else (series.metric, metric)
        if label and label in source:
            target[label] = source[label]
    return resource, metric


def _cross_reduce(q: Query, series: list[Series]) -> list[Series]:
    """Partition by the group-by fields and reduce each partition period by period."""
    if q.reducer == "REDUCE_NONE":
        return series
    groups: dict[Labels, tuple[dict[str, str], dict[str, str], list[Series]]] = {}
    for one in series:
        resource, metric = _group_key(one, q.group_by)
        key = _key(resource, metric)
        groups.setdefault(key, (resource, metric, []))[2].append(one)
    reduced: list[Series] = []
    for resource, metric, members in groups.values():
        indexes = sorted({i for m in members for i in m.points})
        points = {i: _reduce(q.reducer, [m.points[i] for m in members if i in m.points]) for i in indexes}
        reduced.append(Series(resource, metric, points))
    return reduced


# ---- rendering ---------------------------------------------------------------------------------


def _distribution(values: list[float]) -> dict[str, Any]:
    """A Distribution with exponential buckets, int64 fields as strings."""
    mean = statistics.fmean(values)
    counts = [0] * (int(BUCKETS["numFiniteBuckets"]) + 2)
    for value in values:
        index = (
            0
            if value < BUCKETS["scale"]
            else 1 + int(math.log(value / BUCKETS["scale"], BUCKETS["growthFactor"]))
        )
        counts[min(index, len(counts) - 1)] += 1
    while counts and counts[-1] == 0:
        counts.pop()
    return {
        "count": str(len(values)),
        "mean": mean,
        "sumOfSquaredDeviation": sum((v - mean) ** 2 for v in values),
        "range": {"min": min(values), "max": max(values)},
        "bucketOptions": {"exponentialBuckets": dict(BUCKETS)},
        "bucketCounts": [str(c) for c in counts],
    }


def _typed(value: Value) -> tuple[str, dict[str, Any]]:
    """valueType and TypedValue JSON (int64 as a string, as proto3 JSON requires)."""
    if isinstance(value, list):
        return "DISTRIBUTION", {"distributionValue": _distribution(value)}
    if isinstance(value, int):
        return "INT64", {"int64Value": str(value)}
    return "DOUBLE", {"doubleValue": value}


def _unit(q: Query, value_type: str) -> str:
    if q.metric == REQUEST_COUNT:
        return "1/s" if q.aligner == "ALIGN_RATE" else "1"
    return "1" if value_type == "INT64" else "ms"


def _window_number(ingestion: Ingestion, when: float) -> int:
    """Which sampling window a request falls in (a key for unaligned points)."""
    return int(ingestion.window(when)[0] * 1000)


def _render(q: Query, series: Series) -> dict[str, Any] | None:
    """A TimeSeries, newest point first; None when it has no point."""
    if not series.points:
        return None
    points, value_type = [], "INT64"
    for index in sorted(series.points, reverse=q.raw):
        value_type, value = _typed(series.points[index])
        if q.raw:  # index is the sampling window's start in ms
            start = index / 1000
            end = start + q.period
        else:
            end = q.end - index * q.period
            start = end if value_type == "DOUBLE" else end - q.period  # GAUGE points are instants
        interval = {"startTime": format_timestamp(start), "endTime": format_timestamp(end)}
        points.append({"interval": interval, "value": value})
    kind = "GAUGE" if value_type == "DOUBLE" else "DELTA"
    out: dict[str, Any] = {
        "metric": {"type": q.metric, "labels": series.metric},
        "resource": {"type": RESOURCE_TYPE, "labels": series.resource},
        "metricKind": kind,
        "valueType": value_type,
        "unit": _unit(q, value_type),
    }
    if not series.metric:
        del out["metric"]["labels"]
    if not q.headers_only:
        out["points"] = points
    return out


def time_series(
    query: Mapping[str, list[str]],
    samples: Sequence[RequestSample],
    *,
    project: str,
    location: str,
    now: float,
    ingestion: Ingestion = Ingestion(),
) -> tuple[int, dict[str, Any]]:
    """``GET /v3/projects/{project}/timeSeries``: (HTTP status, JSON body) from served requests.

    ``query`` is ``urllib.parse.parse_qs`` output (``aggregation.groupByFields`` repeats). Requests
    after ``now``, or not yet ingested at ``now``, are left out: Cloud Monitoring shows neither.
    """
    try:
        q = parse_query(query)
        if q.raw:
            q = replace(q, period=ingestion.sampling or RAW_PERIOD_SECONDS)
        raw = _raw_series(q, samples, project, location, now, ingestion)
        series = [
            Series(
                resource,
                metric,
                {i: _align(q.metric, q.aligner, q.period, reqs) for i, reqs in periods.items()},
            )
            for resource, metric, periods in raw.values()
        ]
        rendered = [r for r in (_render(q, s) for s in _cross_reduce(q, series)) if r is not None]
        rendered.sort(
            key=lambda s: (
                sorted(s["resource"]["labels"].items()),
                sorted(s["metric"].get("labels", {}).items()),
            )
        )
        return 200, _page(q, rendered)
    except QueryError as error:
        return error.status, error.body()


def _page(q: Query, rendered: list[dict[str, Any]]) -> dict[str, Any]:
    """One page of series; ``nextPageToken`` when more follow (an opaque offset, tied to the query)."""
    start = _decode_page_token(q.page_token, len(rendered))
    end = start + q.page_size
    body: dict[str, Any] = {"timeSeries": rendered[start:end]} if rendered[start:end] else {}
    if end < len(rendered):
        body["nextPageToken"] = base64.urlsafe_b64encode(f"ts:{end}".encode()).decode("ascii")
    return body


def _decode_page_token(token: str, total: int) -> int:
    """The offset in a page token we issued; 400 as Google answers a token it does not know."""
    if not token:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii").partition(":")
        value = int(offset)
    except (ValueError, UnicodeError):
        value, kind = -1, ""
    if kind != "ts" or not 0 <= value <= total:
        raise _invalid("The page token is invalid.")
    return value
