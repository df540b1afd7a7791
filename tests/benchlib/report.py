"""Statistics, the gates, and the Markdown/JSON the benchmark prints.

Figures are compared by ratios measured in the same run (ours/git), since the machines are
shared and noisy; absolute times only judge the gates (docs/benchmarks.md, "Definition").
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from typing import Any

# (verb, size, path) -> seconds: the ten gates of docs/benchmarks.md ("Definition").
GATES: dict[tuple[str, str, str], float] = {
    ("push", "m", "stream"): 5.0,
    ("push", "l", "presign"): 15.0,
    ("push", "xl", "presign"): 30.0,
    ("pull", "m", "stream"): 2.0,
    ("pull", "l", "presign"): 10.0,
    ("fetch", "m", "stream"): 2.0,
    ("fetch", "l", "presign"): 10.0,
    ("clone", "m", "stream"): 5.0,
    ("clone", "l", "presign"): 15.0,
    ("clone", "xl", "presign"): 30.0,
}
FOLLOW_ON_MARGIN = 1.2  # a gate missed by more than 20% becomes a follow-on issue


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so p95 of 3 runs is
    close to the worst rather than equal to it."""
    if not values:
        return float("nan")
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Row:
    """One verb × size × path: our runs, git's runs beside them, and whether all were right."""

    verb: str
    size: str
    path: str  # the path asked for (stream / presign / auto)
    content_bytes: int  # content moved by the verb (4 KiB per file)
    objects: int  # files moved by the verb
    times: list[float] = field(default_factory=list)
    wire: list[float] = field(default_factory=list)  # clone/pull: client-reported wire part
    restore: list[float] = field(default_factory=list)  # clone/pull: working-tree restore
    paths_taken: list[str] = field(default_factory=list)
    git_times: list[float] = field(default_factory=list)
    git_checkout: list[float] = field(default_factory=list)  # git clone's checkout part
    requests: list[int] = field(default_factory=list)  # HTTP requests per run (--json)
    round_trips: list[int] = field(default_factory=list)
    git_requests: list[int] = field(default_factory=list)  # git's, from the edge's log
    git_round_trips: list[int] = field(default_factory=list)
    wire_bytes: list[int] = field(default_factory=list)  # through the edge, both ways
    git_wire_bytes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    git_errors: list[str] = field(default_factory=list)
    runs: int = 0

    @property
    def valid(self) -> bool:
        return self.runs > 0 and not self.errors and len(self.times) == self.runs

    @property
    def gate(self) -> float | None:
        return GATES.get((self.verb, self.size, self.shown_path))

    @property
    def shown_path(self) -> str:
        """The path actually taken, as the client reported it (else the one asked for)."""
        taken = sorted(set(self.paths_taken))
        if len(taken) == 1:
            return taken[0]
        if taken:
            return "/".join(taken)
        return self.path

    @property
    def p50(self) -> float:
        return p50(self.times)

    @property
    def p95(self) -> float:
        return percentile(self.times, 0.95)

    @property
    def git_p50(self) -> float:
        return p50(self.git_times)

    @property
    def verdict(self) -> str:
        if not self.valid:
            return "FAIL (wrong result)" if self.times else "FAIL (error)"
        gate = self.gate
        if gate is None:
            return "ok (no gate)"
        return "pass" if self.p50 < gate else "FAIL"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            shown_path=self.shown_path,
            p50=_num(self.p50),
            p95=_num(self.p95),
            mb_per_s=_num(self.content_bytes / 1e6 / self.p50) if self.times else None,
            objects_per_s=_num(self.objects / self.p50) if self.times else None,
            wire_p50=_num(p50(self.wire)) if self.wire else None,
            restore_p50=_num(p50(self.restore)) if self.restore else None,
            git_p50=_num(self.git_p50) if self.git_times else None,
            git_checkout_p50=_num(p50(self.git_checkout)) if self.git_checkout else None,
            ratio=_num(self.p50 / self.git_p50) if self.times and self.git_times else None,
            gate=self.gate,
            valid=self.valid,
            verdict=self.verdict,
        )
        return d


def _num(x: float) -> float | None:
    return None if x != x else round(x, 4)


def _s(x: float | None) -> str:
    if x is None or x != x:
        return "–"
    return f"{x:.3f}"


def _rate(x: float) -> str:
    """Enough digits to tell tiers apart (XS moves 4 KB, XL 100 MB)."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def size_table(rows: list[Row], compare: bool) -> str:
    """The per-size Markdown table (and clone's wire/restore split beneath it)."""
    head = ["verb", "size", "path", "p50 s", "p95 s", "MB/s", "objects/s", "gate", "pass/fail"]
    if compare:
        head += ["git p50 s", "ours/git"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        have = bool(r.times)
        cells = [
            r.verb,
            r.size.upper(),
            r.shown_path,
            _s(r.p50) if have else "–",
            _s(r.p95) if have else "–",
            _rate(r.content_bytes / 1e6 / r.p50) if have else "–",
            f"{r.objects / r.p50:,.0f}" if have else "–",
            f"< {r.gate:g} s" if r.gate is not None else "–",
            r.verdict,
        ]
        if compare:
            g = r.git_p50 if r.git_times else None
            cells += [_s(g), f"{r.p50 / g:.2f}" if have and g else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    split = [r for r in rows if r.verb in ("clone", "pull") and (r.wire or r.git_checkout)]
    if split:
        lines += [
            "",
            "| verb | size | path | total p50 s | wire p50 s | restore p50 s |"
            " git total p50 s | git checkout p50 s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in split:
            cells = [
                r.verb,
                r.size.upper(),
                r.shown_path,
                _s(r.p50 if r.times else None),
                _s(p50(r.wire) if r.wire else None),
                _s(p50(r.restore) if r.restore else None),
                _s(r.git_p50 if r.git_times else None),
                _s(p50(r.git_checkout) if r.git_checkout else None),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    problems = [(r, e) for r in rows for e in r.errors[:2]]
    problems += [(r, "git: " + e) for r in rows for e in r.git_errors[:2]]
    if problems:
        lines.append("")
        for r, e in problems:
            lines.append(f"- {r.verb} {r.size.upper()} {r.path}: {e}")
    return "\n".join(lines)


def _median_int(xs: list[int]) -> str:
    return f"{statistics.median(xs):g}" if xs else "–"


def _mb(xs: list[int]) -> str:
    return f"{statistics.median(xs) / 1e6:.3g}" if xs else "–"


def requests_table(rows: list[Row]) -> str:
    """Requests and round trips per verb, ours (the client's --json) beside git's (nginx's
    access log: requests, plus two round trips per new connection, as ours are counted)."""
    rows = [r for r in rows if r.requests or r.git_requests]
    if not rows:
        return ""
    lines = [
        "| verb | size | path | requests | round trips | git requests | git round trips |"
        " round trips ours/git | MB via edge | git MB via edge |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "–"
        if r.round_trips and r.git_round_trips:
            ratio = f"{statistics.median(r.round_trips) / statistics.median(r.git_round_trips):.2f}"
        cells = [r.verb, r.size.upper(), r.shown_path, _median_int(r.requests),
                 _median_int(r.round_trips), _median_int(r.git_requests),
                 _median_int(r.git_round_trips), ratio, _mb(r.wire_bytes),
                 _mb(r.git_wire_bytes)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gate_verdicts(rows: list[Row]) -> str:
    """Every gate, with a follow-on line for each miss by more than 20%."""
    by_key = {(r.verb, r.size, r.shown_path): r for r in rows}
    lines = ["| gate | p50 s | verdict |", "|---|---|---|"]
    follow = []
    for (verb, size, path), limit in GATES.items():
        r = by_key.get((verb, size, path))
        name = f"{verb} {size.upper()} {path} < {limit:g} s"
        if r is None:
            lines.append(f"| {name} | – | not run |")
            continue
        lines.append(f"| {name} | {_s(r.p50 if r.times else None)} | {r.verdict} |")
        if not r.valid:
            follow.append(
                f"- follow-on: {verb} {size.upper()} {path} does not produce a valid result"
            )
        elif r.p50 > limit * FOLLOW_ON_MARGIN:
            follow.append(
                f"- follow-on: {verb} {size.upper()} {path} missed its gate by "
                f"{(r.p50 / limit - 1) * 100:.0f}% ({r.p50:.2f} s against {limit:g} s)"
            )
    ran = any((v, z, p) in by_key for v, z, p in GATES)
    if follow:
        lines += [""] + follow
    elif ran:
        lines += ["", "No gate missed by more than 20%: no follow-on tickets."]
    return "\n".join(lines)


def behind_git(rows: list[Row]) -> str:
    """The rows where we are not clearly ahead of git (ours/git >= 1): each needs a why."""
    slow = [r for r in rows if r.times and r.git_times and r.p50 >= r.git_p50]
    if not slow:
        return "Ahead of git on every row measured."
    lines = ["Rows where we are not ahead of git:"]
    for r in slow:
        lines.append(
            f"- {r.verb} {r.size.upper()} {r.shown_path}: {r.p50:.3f} s against git "
            f"{r.git_p50:.3f} s (ours/git {r.p50 / r.git_p50:.2f})"
        )
    return "\n".join(lines)


PREAMBLE = """# MuseWire benchmarks

Produced by `tests/bench_wire.py` (tables not edited by hand; the notes at the end are
the analysis written after the run): the four verbs on the workload defined in
docs/benchmarks.md (tiers XS–XL, 4 KiB incompressible files, a growing history), each run on fresh
repositories, `muse` timed as a whole process against `musehub serve` on loopback, and git
through `git daemon` on loopback alternating with ours in the same run. The machines are
shared and noisy: the ratio ours/git, measured side by side, is the figure to compare.
Clone's total includes restoring the working tree; its wire and restore parts are the client's
own `--json` figures, and git's checkout part is a `git checkout` after a
`git clone --no-checkout`.
"""


def machine() -> dict[str, str]:
    """What the figures were measured on: they only mean something beside this."""
    cpu = "unknown"
    mem = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        git = subprocess.run(
            ["/usr/bin/git", "--version"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        git = "unknown"
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "memory": mem,
        "cpu": cpu,
        "python": platform.python_version(),
        "git": git,
        "kernel": platform.release(),
    }
