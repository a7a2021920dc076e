"""Draw a written comparison's plots: `python -m smvision.comparison DIR`.

`python -m launch compare` writes comparison.md and comparison.json without plots: the
launchers never import matplotlib (it imports numpy). Where matplotlib is installed (the
development venv, `make venv`), this reads DIR/comparison.json back into its rows and writes
the report again, with the three plots beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from smvision.comparison.report import write_report
from smvision.comparison.rows import Row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m smvision.comparison",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "report_dir", type=Path, metavar="DIR", help="the folder holding comparison.json"
    )
    args = parser.parse_args(argv)
    path = args.report_dir / "comparison.json"
    try:
        written = json.loads(path.read_text())
        rows = [Row.from_json(row) for row in written["rows"]]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"error: {path} is not a comparison written by smvision ({error}).", file=sys.stderr)
        return 2
    write_report(
        rows,
        args.report_dir,
        title=written["title"],
        context=written["context"],
        measured=written["measured"],
        plots=True,
    )
    print(f"Plots drawn; report rewritten: {args.report_dir / 'comparison.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
