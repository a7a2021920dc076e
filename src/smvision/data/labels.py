"""Labels as the built-in image classifiers write them, read into sets of class names.

A sample's labels are a tuple of class names: one for single-label data, any number
(zero included) for multi-label data. Multi-label values come as

- multi-hot: one 0/1 value per class, in class order (`[1, 0, 1]`: classes 0 and 2);
- class-id: the ids of the classes that apply (`[0, 2]`), the format Ground Truth writes.

`label_format` says which; `auto` takes a list as multi-hot when every value is 0 or 1
and all lists have the same length (the built-in algorithm's default), else as class
ids. Standard library only.
"""

from __future__ import annotations

from collections.abc import Sequence


class LabelError(ValueError):
    """A label value that cannot be read, with where it came from and what is accepted."""


def label_text(value: float | int | str) -> str:
    """A class name from a label value: 3.0 -> "3", "cat" -> "cat"."""
    if isinstance(value, str):
        return value.strip()
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def is_multi_hot(rows: Sequence[Sequence[float | int | str]]) -> bool:
    """Whether lists of label values read as multi-hot under `auto` (see the module doc)."""
    lengths = {len(row) for row in rows}
    if len(lengths) != 1 or lengths == {0}:
        return False
    return all(_is_bit(value) for row in rows for value in row)


def _is_bit(value: float | int | str) -> bool:
    try:
        return float(value) in (0.0, 1.0)
    except (TypeError, ValueError):
        return False


def decode(values: Sequence[float | int | str], multi_hot: bool, where: str) -> tuple[str, ...]:
    """One sample's label values -> its class names (multi-hot positions or the ids)."""
    if not multi_hot:
        names = tuple(dict.fromkeys(label_text(v) for v in values))
        if any(not name for name in names):
            raise LabelError(f"{where}: a label is empty; give class ids or names.")
        return names
    classes = []
    for position, value in enumerate(values):
        if not _is_bit(value):
            raise LabelError(
                f"{where}: multi-hot labels are 0 or 1, one per class, but position "
                f"{position} holds {value!r}; for a list of class ids set label_format=class-id."
            )
        if float(value) == 1.0:
            classes.append(str(position))
    return tuple(classes)


def resolve_format(label_format: str, rows: Sequence[Sequence[float | int | str]]) -> bool:
    """Whether to read lists of label values as multi-hot, for a whole channel."""
    if label_format == "multi-hot":
        return True
    if label_format == "class-id":
        return False
    return is_multi_hot(rows)
