"""`GET /metrics`: the team server's counters in Prometheus' text format (version 0.0.4).

    docent_requests_total{endpoint,status}        requests answered, by route and HTTP status
    docent_request_seconds{endpoint}              latency histogram, by route
    docent_queue_wait_seconds                     time a question waited for the model
    docent_answers_total{outcome}                 answered / abstained / flagged / blocked / cancelled
    docent_queue_waiting, docent_queue_running    the line now

Labels are routes (`/v1/collections/{name}/files`), never collection names, users or
paths: the page says nothing about who asked what or what exists. Written by hand: the
format is a few lines, not worth a dependency.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
OUTCOMES = ("answered", "abstained", "flagged", "blocked", "cancelled")


class Histogram:
    def __init__(self):
        self.counts = [0] * (len(BUCKETS) + 1)      # the last: above every bound
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, running = [], 0
        sep = "," if labels else ""
        for bound, count in zip([*map(str, BUCKETS), "+Inf"], self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound}"}} {running}')
        brace = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{brace} {self.total:.6f}", f"{name}_count{brace} {running}"]
        return out


class Metrics:
    """Thread-safe: every request's thread records into it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requests: Counter = Counter()
        self._latency: dict[str, Histogram] = {}
        self._wait = Histogram()
        self._answers: Counter = Counter({outcome: 0 for outcome in OUTCOMES})

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(endpoint, status)] += 1
            self._latency.setdefault(endpoint, Histogram()).observe(seconds)

    def waited(self, seconds: float) -> None:
        with self._lock:
            self._wait.observe(seconds)

    def answered(self, answer) -> None:
        """One answer's outcome (None: the client went away first)."""
        outcome = ("cancelled" if answer is None else "blocked" if answer.blocked else
                   "abstained" if answer.abstained else "flagged" if answer.flags else "answered")
        with self._lock:
            self._answers[outcome] += 1

    def render(self, waiting: int, running: int) -> str:
        with self._lock:
            lines = ["# HELP docent_requests_total Requests answered, by route and HTTP status.",
                     "# TYPE docent_requests_total counter"]
            lines += [f'docent_requests_total{{endpoint="{e}",status="{s}"}} {n}'
                      for (e, s), n in sorted(self._requests.items())]
            lines += ["# HELP docent_request_seconds Time from request to response, by route.",
                      "# TYPE docent_request_seconds histogram"]
            for endpoint, histogram in sorted(self._latency.items()):
                lines += histogram.lines("docent_request_seconds", f'endpoint="{endpoint}"')
            lines += ["# HELP docent_queue_wait_seconds Time a question waited in line for the model.",
                      "# TYPE docent_queue_wait_seconds histogram", *self._wait.lines("docent_queue_wait_seconds"),
                      "# HELP docent_answers_total Answers by outcome.", "# TYPE docent_answers_total counter"]
            lines += [f'docent_answers_total{{outcome="{o}"}} {n}' for o, n in sorted(self._answers.items())]
        lines += ["# HELP docent_queue_waiting Questions waiting for the model now.", "# TYPE docent_queue_waiting gauge",
                  f"docent_queue_waiting {waiting}",
                  "# HELP docent_queue_running Questions being answered now.", "# TYPE docent_queue_running gauge",
                  f"docent_queue_running {running}"]
        return "\n".join(lines) + "\n"
