"""The hyperparameter table, from the schema: python -m scripts.hyperparameter_table

Prints one Markdown row per hyperparameter: the algorithms that take it, its default
(per algorithm where they differ), the values it accepts, the range a tuning job
searches, and what it does. `python -m scripts.reference_pages` writes it into
docs/reference/hyperparameters.md, and tests/docs/test_reference_pages.py keeps them equal.
"""

from __future__ import annotations

from smvision.schema import hyperparameters, specs
from smvision.schema.params import Param, TuningRange, format_value


def table() -> str:
    algorithms = [spec.name for spec in specs.BUILT_IN]
    schemas = {name: hyperparameters.schema(name) for name in algorithms}
    order = list(dict.fromkeys(key for name in algorithms for key in schemas[name]))
    lines = [
        "| hyperparameter | for | default | accepts | tuning range | what it does |",
        "|---|---|---|---|---|---|",
    ]
    for key in order:
        takers = [name for name in algorithms if key in schemas[name]]
        param = schemas[takers[0]][key]
        cells = [
            f"`{key}`",
            "all" if len(takers) == len(algorithms) else ", ".join(takers),
            _defaults(key, takers, schemas),
            _accepts(param),
            _tuning(param.tuning),
            param.help.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _defaults(key: str, takers: list[str], schemas: dict[str, dict[str, Param]]) -> str:
    by_value: dict[str, list[str]] = {}
    for name in takers:
        by_value.setdefault(format_value(schemas[name][key].default), []).append(name)
    if len(by_value) == 1:
        return f"`{next(iter(by_value))}`"
    return "; ".join(f"`{value}` ({', '.join(names)})" for value, names in by_value.items())


def _accepts(param: Param) -> str:
    if param.combinable:
        return "one or more of " + ", ".join(param.combinable) + " joined by `+`"
    return param.describe_allowed()


def _tuning(tuning: TuningRange | None) -> str:
    if tuning is None:
        return ""
    if tuning.kind == "categorical":
        return ", ".join(tuning.values)
    low, high = (format_value(v) if v is not None else "" for v in (tuning.low, tuning.high))
    if tuning.kind == "integer":
        low, high = (str(int(float(v))) for v in (low, high))
    scaling = " (log)" if tuning.scaling == "Logarithmic" else ""
    return f"{low} to {high}{scaling}"


if __name__ == "__main__":
    print(table(), end="")
