"""One log format for `train` and `serve`: a line per record on stdout, which SageMaker
sends to CloudWatch (no colours, no carriage returns)."""

from __future__ import annotations

import logging
import sys


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
