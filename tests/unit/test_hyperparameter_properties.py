"""Generated hyperparameter values, from each Param's own declared type and bounds, as
scikit-learn's common tests generate bad input from an estimator's declared constraints
(issue 22).

For every hyperparameter of every built-in algorithm (smvision.schema.hyperparameters.schema):
values out of bounds, of the wrong type, empty, NaN and infinities, huge, with control
characters, or unlike every choice, are refused with one line that names the hyperparameter,
the value and what is accepted; values within bounds are accepted and survive a round trip
through the string SageMaker would carry. The `ci` profile (tests/conftest.py) bounds the
examples per test.
"""

from __future__ import annotations

import math
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smvision.schema import hyperparameters, specs
from smvision.schema.params import HyperparameterError, Param, format_value, shown_value


def distinct(pairs: list[tuple[str, Param]]) -> list[tuple[str, Param]]:
    """Each declaration once (the common ones are every algorithm's), image_size per
    algorithm (what it accepts depends on the algorithm's features)."""
    seen: dict[object, tuple[str, Param]] = {}
    for algorithm, param in pairs:
        key = (param.name, param.type, param.low, param.high, param.choices, param.keywords)
        seen.setdefault((algorithm, key) if param.name == "image_size" else key, (algorithm, param))
    return list(seen.values())


PARAMS = distinct(
    [
        (spec.name, param)
        for spec in specs.BUILT_IN
        for param in hyperparameters.schema(spec.name).values()
    ]
)
IDS = [f"{algorithm}-{param.name}" for algorithm, param in PARAMS]
# The strings SageMaker's SDK writes for booleans, and the ones smvision also reads.
BOOLEANS = ("true", "false", "1", "0", "True", "False", "TRUE", "FALSE")
# Floats as the SDK writes them (json.dumps) or a person types them.
NOT_FINITE = ("nan", "NaN", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1e400")


def words(param: Param) -> st.SearchStrategy[str]:
    """Text that is none of the param's words (choices, keywords, booleans) and no number."""
    taken = {w.lower() for w in (*param.choices, *param.keywords, *param.combinable)}
    taken |= {"true", "false", "nan", "inf", "infinity"}
    return st.text(string.ascii_letters + "_-", min_size=1, max_size=30).filter(
        lambda text: text.lower() not in taken
    )


def outside(param: Param) -> st.SearchStrategy[str]:
    """Numbers below the low bound or above the high one, as text."""
    sides = []
    if param.low is not None:
        low = param.low
        sides.append(st.floats(max_value=low, exclude_max=True, allow_nan=False).map(repr))
        if param.type == "int":
            sides.append(st.integers(max_value=math.ceil(low) - 1).map(str))
    if param.high is not None:
        high = param.high
        sides.append(st.floats(min_value=high, exclude_min=True, allow_nan=False).map(repr))
        if param.type == "int":
            sides.append(st.integers(min_value=math.floor(high) + 1).map(str))
    sides.append(st.sampled_from(["1" + "0" * 400, "1e300", "-1e300"]))  # huge
    return st.one_of(sides)


def invalid(param: Param) -> st.SearchStrategy[object]:
    """Values this param must refuse, from its own declaration."""
    wrong = [
        st.just(""),
        st.sampled_from([" ", "\t", "\n"]),
        words(param),
        st.text(min_size=1, max_size=12).map(lambda t: t + "\x00\x07\n"),  # control characters
        st.text(string.ascii_letters, min_size=300, max_size=5000),  # huge
        st.lists(st.integers(), max_size=3),  # the wrong type altogether
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    ]
    if param.type in ("int", "float"):
        wrong += [outside(param), st.sampled_from(NOT_FINITE), st.just("12abc"), st.just("0x10")]
        if param.type == "int":
            within = st.floats(param.low, param.high, allow_nan=False)
            wrong.append(within.filter(lambda v: not v.is_integer()).map(repr))
    if param.type == "bool":
        wrong += [st.sampled_from(["yes", "no", "2", "-1", "on", "off", "t"])]
    if param.combinable:
        parts = st.sampled_from(param.combinable)
        wrong += [
            st.tuples(parts, words(param)).map("+".join),
            parts.map(lambda part: f"{part}+{part}"),
            st.just("+"),
        ]
    return st.one_of(wrong)


def valid(algorithm: str, param: Param) -> st.SearchStrategy[str]:
    """Values this param must accept, alone with every other at its default."""
    if param.name == "image_size":
        spec = specs.get(algorithm)
        # svm and rf extract HOG by default: 8-pixel cells in 16-pixel blocks.
        step = 8 if algorithm in ("svm", "rf") else 1
        low = max(spec.min_image_size, 16 if step == 8 else 0)
        sizes = st.integers(-(-low // step), 1024 // step).map(lambda n: str(n * step))
        return st.one_of(sizes, st.sampled_from(["auto", "AUTO"]))
    keywords = [st.sampled_from([k, k.upper()]) for k in param.keywords]
    if param.type == "bool":
        return st.one_of(st.sampled_from(BOOLEANS), *keywords)
    if param.type == "int":
        numbers = st.integers(int(param.low or 0), int(param.high or 0))
        if param.name == "cv_folds":  # one fold is no cross-validation
            numbers = numbers.filter(lambda n: n != 1)
        if param.name == "gabor_kernel_size":  # a kernel has a centre pixel
            numbers = numbers.filter(lambda n: n % 2 == 1)
        return st.one_of(numbers.map(str), numbers.map(lambda n: f" {n}.0 "), *keywords)
    if param.type == "float":
        return st.one_of(st.floats(param.low, param.high).map(repr), *keywords)
    if param.combinable:
        return st.lists(st.sampled_from(param.combinable), min_size=1, unique=True).map("+".join)
    return st.sampled_from(param.choices).flatmap(lambda c: st.sampled_from([c, c.upper()]))


def test_every_number_is_declared_with_both_bounds() -> None:
    """So that a huge value is refused by the schema, not by the library it reaches."""
    unbounded = [p.name for _, p in PARAMS if p.type in ("int", "float") and p.high is None]
    assert unbounded == []


@pytest.mark.parametrize(("algorithm", "param"), PARAMS, ids=IDS)
@given(data=st.data())
def test_a_bad_value_is_refused_with_the_name_the_value_and_what_is_accepted(
    algorithm: str, param: Param, data: st.DataObject
) -> None:
    raw = data.draw(invalid(param), label="value")
    with pytest.raises(HyperparameterError) as refused:
        hyperparameters.parse({"algorithm": algorithm, param.name: raw})
    message = str(refused.value)
    assert f"Hyperparameter '{param.name}' has value '{shown_value(str(raw).strip())}'" in message
    allowed = ", ".join(param.combinable) if param.combinable else param.describe_allowed()
    assert allowed in message
    assert "\n" not in message and len(message) < 1000  # one line in output/failure


@pytest.mark.parametrize(("algorithm", "param"), PARAMS, ids=IDS)
@given(data=st.data())
def test_a_value_within_bounds_is_accepted_and_survives_the_round_trip(
    algorithm: str, param: Param, data: st.DataObject
) -> None:
    raw = data.draw(valid(algorithm, param), label="value")
    parsed = hyperparameters.parse({"algorithm": algorithm, param.name: raw}).values[param.name]
    again = hyperparameters.parse({"algorithm": algorithm, param.name: format_value(parsed)})
    assert again.values[param.name] == parsed
