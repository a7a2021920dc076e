"""Follow several training jobs at once: one rich display, a line per status change.

The display shows each job's status, secondary status and elapsed time while the jobs run
(on a terminal); every change is also printed as a line of its own, so a log or a CI run
keeps the story. Ctrl-C stops the following, not the jobs: the error names each job still
running and the command that stops it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from launch.common.errors import Interrupted
from launch.common.progress import TERMINAL, latest_status_message
from launch.common.waits import Deadline, job_wait_s


class StillRunning(Interrupted):
    """Ctrl-C while jobs ran: they go on, billing; the message says how to stop them."""

    def __init__(self, region: str, jobs: Mapping[str, str]) -> None:
        super().__init__("\n".join(["Interrupted.", *still_running(region, jobs)]))
        self.jobs = dict(jobs)


def still_running(region: str, jobs: Mapping[str, str]) -> list[str]:
    """Which jobs keep running (label -> job name), and the commands that stop them."""
    if not jobs:
        return []
    return [
        "These training jobs keep running on SageMaker, and billing:",
        *(f"  {label}: {name}" for label, name in jobs.items()),
        "Stop them with:",
        *(
            f"  aws sagemaker stop-training-job --region {region} --training-job-name {name}"
            for name in jobs.values()
        ),
    ]


def follow_jobs(
    sagemaker: Any,
    jobs: Mapping[str, str],
    region: str,
    poll_s: float = 30,
    sleep: Callable[[float], None] = time.sleep,
    console: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, dict[str, Any]]:
    """Poll every job (label -> job name) until all have ended, or until the first one
    running past its deadline (waits.job_wait_s); their descriptions by label."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    described: dict[str, dict[str, Any]] = {}
    running = dict(jobs)
    seen: dict[str, tuple[str, str]] = {}
    deadlines: dict[str, Deadline] = {}
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<10}"),
        TextColumn("{task.fields[job]}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            tasks = {
                label: progress.add_task(label, job=name, status="Pending", total=None)
                for label, name in jobs.items()
            }
            while running:
                for label, name in list(running.items()):
                    answer = dict(sagemaker.describe_training_job(TrainingJobName=name))
                    if label not in deadlines:
                        seconds, why = job_wait_s(answer)
                        deadlines[label] = Deadline(seconds, f"{label}'s training job", why, clock)
                    status = (answer["TrainingJobStatus"], answer.get("SecondaryStatus") or "")
                    if status != seen.get(label):
                        seen[label] = status
                        progress.update(tasks[label], status=" / ".join(filter(None, status)))
                        progress.console.print(f"{label}: {_change(answer)}")
                    if status[0] in TERMINAL:
                        described[label] = answer
                        progress.stop_task(tasks[label])
                        del running[label]
                    elif deadlines[label].passed:
                        raise deadlines[label].expired(
                            " / ".join(filter(None, status)),
                            "\n".join(still_running(region, running)),
                        )
                if running:
                    sleep(poll_s)
    except KeyboardInterrupt as interrupt:
        raise StillRunning(region, running) from interrupt
    return described


def _change(answer: Mapping[str, Any]) -> str:
    status = str(answer["TrainingJobStatus"])
    secondary = answer.get("SecondaryStatus")
    message = latest_status_message(answer)
    if status in ("Failed", "Stopped") and answer.get("FailureReason"):
        message = str(answer["FailureReason"])
    text = status + (f" / {secondary}" if secondary and secondary != status else "")
    return text + (f" - {message}" if message else "")
