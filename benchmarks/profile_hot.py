"""Where the time goes: a pyinstrument profile of one benchmark (default fleet8_100k at 30k requests).

    pip install pyinstrument && python benchmarks/profile_hot.py [NAME] [--requests N]

Prints the call tree (functions over 2% of the time) and writes benchmarks/out/profile_<name>.txt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from benchmarks.run import BENCHMARKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="fleet8_100k")
    parser.add_argument("--requests", type=int, default=30_000)
    args = parser.parse_args()
    try:
        from pyinstrument import Profiler
    except ImportError:
        sys.exit("needs pyinstrument: pip install pyinstrument")
    data, _ = BENCHMARKS[args.name]
    if isinstance(data, str):
        sys.exit(f"{args.name} is a Monte Carlo study; profile one of its single-run benchmarks")
    from sim.loader import load_scenario_dict
    from sim.resolve import resolve
    from sim.run import run_simulation

    resolved = resolve(load_scenario_dict({**data, "num_requests": args.requests}))
    profiler = Profiler(interval=0.0005)
    profiler.start()
    run_simulation(resolved)
    profiler.stop()
    text = profiler.output_text(unicode=False, color=False, show_all=False, time="percent_of_total")
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"profile_{args.name}.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
