"""Printing a benchmark's table and writing its JSON to `benchmarks/results/`."""

from __future__ import annotations

import atexit
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(os.environ.get("HEARTH_BENCH_RESULTS")
               or Path(__file__).resolve().parent / "results")


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def table(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [f"\n{title}", line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                             for c, w in zip(row, widths, strict=True)))
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _numeric(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or text[0] == "-") and " " not in text


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    payload = {"benchmark": name, "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (RESULTS / f"{name}-latest.json").write_text(json.dumps(payload, indent=2, default=str)
                                                 + "\n")
    return path


def temp_dir(prefix: str) -> str:
    """A temporary folder for one benchmark run, removed when the process exits."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class Checks:
    """The checks a benchmark prints, and its exit status from them.

    A *correctness* check (nothing lost, duplicated or unanswered; a command that must
    succeed) always fails the run. A *target* (a ratio, a latency bound) fails it too unless
    the run was asked for `--targets report`: smoke runs are too small, and a loaded machine
    too noisy, for targets to mean anything there.
    """

    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, str, bool]] = []

    def correct(self, name: str, ok: bool, detail: Any = "") -> None:
        self.rows.append((name, bool(ok), str(detail), False))

    def target(self, name: str, ok: bool, detail: Any = "") -> None:
        self.rows.append((name, bool(ok), str(detail), True))

    def failed(self, enforce_targets: bool) -> list[str]:
        return [name for name, ok, _, is_target in self.rows
                if not ok and (enforce_targets or not is_target)]

    def finish(self, targets: str) -> None:
        """Print the checks; exit 1 if one that counts (see the class) failed."""
        enforce = targets == "enforce"
        rows = [[name, "target" if is_target else "correctness", detail,
                 "ok" if ok else ("FAILED" if enforce or not is_target else "missed (reported)")]
                for name, ok, detail, is_target in self.rows]
        print(table("checks", ["check", "kind", "value", "result"], rows))
        failed = self.failed(enforce)
        if failed:
            print(f"\nFAILED checks: {', '.join(failed)}")
            raise SystemExit(1)
        print("\nall checks passed" + ("" if enforce else " (targets reported, not enforced)"))


def add_targets_option(parser: Any) -> None:
    parser.add_argument("--targets", choices=["enforce", "report"], default="enforce",
                        help="whether a missed performance target fails the run "
                             "(correctness checks always do)")
