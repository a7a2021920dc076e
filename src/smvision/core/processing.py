"""What the image's processing-job entrypoints (`monitor`, `gate`) share: the one place
their errors are caught, and the reason left where SageMaker shows it (the job's
ExitMessage, from /opt/ml/output/message)."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from smvision.core import contract as contract_module
from smvision.core import logs
from smvision.core.artifacts import write_message
from smvision.core.contract import Contract

USER_ERROR_EXIT = 2
INTERNAL_ERROR_EXIT = 1


def run_job(
    work: Callable[[Contract], int], user_errors: tuple[type[Exception], ...], log: logging.Logger
) -> int:
    """`work` with the job's contract; its exit status, or that of the error it raised."""
    logs.configure_logging()
    contract = contract_module.load()
    try:
        return work(contract)
    except user_errors as error:
        log.error("%s", error)
        write_message(contract.processing_message_file, str(error))
        return USER_ERROR_EXIT
    except Exception as error:  # the one place internal errors are caught and reported
        log.error("Internal error:\n%s", traceback.format_exc())
        write_message(
            contract.processing_message_file, f"Internal error ({type(error).__name__}): {error}"
        )
        return INTERNAL_ERROR_EXIT
