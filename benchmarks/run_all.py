"""Run every ``benchmarks/bench_*.py`` and collect their final JSON lines.

Writes ``benchmarks/results/latest.json`` (benchmark name -> its result object) and
``benchmarks/results/latest.md`` (a summary table). Usage::

    python benchmarks/run_all.py            # full sizes (make bench)
    python benchmarks/run_all.py --quick    # small sizes, a smoke run
    python benchmarks/run_all.py --only ingestion quality
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def last_json_line(text: str) -> dict:
    """The last line of ``text`` that parses as a JSON object."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object line in the benchmark output")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument(
        "--only", nargs="*", default=None, help="names like 'ingestion' (bench_ingestion.py)"
    )
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    results: dict[str, dict] = {}
    failed: list[str] = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        sys.stderr.write(proc.stderr[-2000:])
        if proc.returncode != 0:
            failed.append(name)
            results[name] = {"error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-2000:]}
            print(f"   FAILED (exit {proc.returncode}) after {seconds:.1f} s", flush=True)
            continue
        try:
            results[name] = last_json_line(proc.stdout)
        except ValueError as exc:
            failed.append(name)
            results[name] = {"error": str(exc)}
            continue
        results[name]["_wall_seconds"] = round(seconds, 2)
        print(f"   {json.dumps(results[name])}", flush=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    lines = ["# Benchmark results", "", "| benchmark | key | value |", "|---|---|---|"]
    for name, result in results.items():
        for key, value in result.items():
            if isinstance(value, (int, float, str, bool)) and key != "stderr_tail":
                lines.append(f"| {name} | {key} | {value} |")
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'latest.json'} and latest.md", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
