"""How long the launchers wait for SageMaker, and what they say when a wait runs out.

Every wait has a deadline. A job's comes from its own time limit (StoppingCondition) plus
START_AND_FINISH_S, the time SageMaker spends around it (instances, the image, the upload
of the model), so a deadline passes only when something is wrong; what has no limit of its
own (an endpoint being created, a batch transform) gets a default that `--wait-timeout`
changes. When one passes the launcher stops waiting, says what it waited for, how long and
why that long, and what is still running, and exits 1: SageMaker carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from launch.common.errors import AwsError

# Around a job's own time limit: instances to start, the image to pull, data to download
# before it, the model to upload after.
START_AND_FINISH_S = 3600
# SageMaker's default MaxRuntimeInSeconds, for a description that names none.
DEFAULT_MAX_RUNTIME_S = 86400
# Creating an endpoint: instances, the image, the model's download (up to an hour when its
# ModelDataDownloadTimeoutInSeconds says so) and the container's health check (the same).
ENDPOINT_WAIT_S = 3 * 3600
# A batch transform has no time limit of its own.
TRANSFORM_WAIT_S = 24 * 3600


class WaitExpired(AwsError):
    """A wait that ran past its deadline; what it waited for goes on in SageMaker."""


@dataclass
class Deadline:
    """`seconds` from now (by `clock`) to wait for `what`, for the reason `why`."""

    seconds: float
    what: str
    why: str
    clock: Callable[[], float] = time.monotonic
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def passed(self) -> bool:
        return self.clock() - self.started >= self.seconds

    def expired(self, status: str, check: str) -> WaitExpired:
        """The sentence: what, how long and why, what it still is, how to look at it."""
        return WaitExpired(
            f"Stopped waiting for {self.what} after {self.seconds:.0f} s ({self.why}); it is "
            f"still {status}, and goes on in SageMaker. {check}"
        )


def job_wait_s(described: Mapping[str, Any]) -> tuple[float, str]:
    """How long to wait for a job SageMaker described (its StoppingCondition), and why."""
    stopping = described.get("StoppingCondition") or {}
    limit = stopping.get("MaxWaitTimeInSeconds") or stopping.get("MaxRuntimeInSeconds")
    name = "MaxWaitTimeInSeconds" if stopping.get("MaxWaitTimeInSeconds") else "MaxRuntimeInSeconds"
    seconds = int(limit or DEFAULT_MAX_RUNTIME_S)
    return (
        seconds + START_AND_FINISH_S,
        f"its {name} of {seconds} s and {START_AND_FINISH_S} s to start and finish",
    )


@contextmanager
def sdk_deadline(
    what: str, seconds: float, why: str, check: str, status: Callable[[], object]
) -> Iterator[None]:
    """Around an SDK wait given `timeout=seconds`: its TimeoutExceededError as our sentence,
    with the status `status()` reads."""
    from sagemaker.core.utils.exceptions import TimeoutExceededError

    try:
        yield
    except TimeoutExceededError as error:
        try:
            now = str(status())
        except Exception:  # the sentence matters more than the status in it
            now = "not done"
        raise Deadline(seconds, what, why).expired(now, check) from error
