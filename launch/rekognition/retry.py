"""Calling Rekognition again when it throttles: exponential backoff with full jitter, bounded.

Rekognition answers ThrottlingException (over the account's transactions per second) or
ProvisionedThroughputExceededException when many images are sent at once. The clients
built here have botocore's own retries turned off, so that this is the one bound on how
often and how long a call is retried: `attempts` tries in all, the n-th wait drawn
uniformly from [0, min(cap, base * 2**n)] ("full jitter", which spreads the threads of a
pool apart instead of retrying them in step).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

THROTTLING = frozenset({"ThrottlingException", "ProvisionedThroughputExceededException"})

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    attempts: int = 6
    base_s: float = 0.5
    cap_s: float = 20.0

    def wait_s(self, retry: int, draw: Callable[[], float]) -> float:
        """The wait before retry number `retry` (0 for the first retry)."""
        return float(draw() * min(self.cap_s, self.base_s * 2**retry))


DEFAULT_BACKOFF = Backoff()


class Throttled(Exception):
    """Still throttled after every attempt."""

    def __init__(self, operation: str, attempts: int, last: Exception) -> None:
        super().__init__(
            f"{operation} was throttled {attempts} times in a row ({last}); "
            "lower --concurrency or ask AWS for a higher TPS quota."
        )


def rekognition_client(session: Any) -> Any:
    """A Rekognition client whose throttling retries are left to `call`."""
    from botocore.config import Config

    return session.client("rekognition", config=Config(retries={"total_max_attempts": 1}))


def call(
    operation: str,
    request: Callable[[], T],
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> T:
    """`request()`, retried while Rekognition throttles it."""
    from botocore.exceptions import ClientError

    retries = 0
    while True:
        try:
            return request()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in THROTTLING:
                raise
            if retries + 1 >= backoff.attempts:
                raise Throttled(operation, retries + 1, error) from error
            sleep(backoff.wait_s(retries, draw))
            retries += 1
