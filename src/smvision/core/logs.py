"""One log format for `train` and `serve`: a line per record on stdout, which SageMaker
sends to CloudWatch (no colours, no carriage returns)."""

from __future__ import annotations

import logging
import os
import sys

TF_LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# TensorFlow's C++ side logs INFO and WARNING lines (oneDNN, CPU instructions, device
# placement) from its first import on, which bury ours in CloudWatch; level 2 keeps its
# errors. A level the user sets wins. Set before the first TensorFlow import to count.
QUIET_TF_LOG_LEVEL = "2"


def configure_logging() -> None:
    os.environ.setdefault(TF_LOG_LEVEL_ENV, QUIET_TF_LOG_LEVEL)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
