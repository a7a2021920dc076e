"""Hypothesis profiles for the generated tests (property tests, the HTTP API's fuzz).

`ci`, the default everywhere (`make test`, CI): a bounded number of examples, the same ones
on every run (derandomized, so a red run is a real finding, reproducible by name), no
example database written into the repository. `thorough`: ten times the examples, drawn
afresh each run, to look for new failures (HYPOTHESIS_PROFILE=thorough)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "HYPOTHESIS_PROFILE"
CI_EXAMPLES = 60


def load() -> None:
    settings.register_profile(
        "ci",
        max_examples=CI_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,  # the machine is shared: no timing
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        "thorough",
        settings.get_profile("ci"),
        max_examples=10 * CI_EXAMPLES,
        derandomize=False,
    )
    settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))
