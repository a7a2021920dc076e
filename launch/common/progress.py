"""Follow a training job: its status changes and its CloudWatch log lines, until it ends.

The SDK's own `TrainingJob.wait(logs=True)` reads logs through a process-wide client
built from boto3's default region rather than the job's, so it fails or looks in the
wrong region when --region differs from the AWS configuration; this reads them with
the session the job was created with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from launch.common.waits import Deadline, job_wait_s

if TYPE_CHECKING:
    import boto3

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")


class LogFollower:
    """New events of every log stream of one job (one stream per host)."""

    def __init__(self, logs: Any, job_name: str) -> None:
        self.logs = logs
        self.prefix = job_name + "/"
        self.tokens: dict[str, str | None] = {}

    def new_lines(self) -> list[str]:
        from botocore.exceptions import ClientError

        try:
            streams = self.logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=self.prefix, orderBy="LogStreamName"
            )["logStreams"]
        except ClientError as error:
            # The log group appears only once the first container of the account logs.
            if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        lines = []
        for stream in streams:
            name = stream["logStreamName"]
            host = name[len(self.prefix) :].split("-")[0:2]
            label = "-".join(host)
            while True:
                request: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": name,
                    "startFromHead": True,
                }
                if self.tokens.get(name):
                    request["nextToken"] = self.tokens[name]
                response = self.logs.get_log_events(**request)
                events = response.get("events", [])
                lines += [f"[{label}] {event['message'].rstrip()}" for event in events]
                token = response.get("nextForwardToken")
                done = not events or token == self.tokens.get(name)
                self.tokens[name] = token
                if done:
                    break
        return lines


def follow_training_job(
    session: boto3.session.Session,
    job_name: str,
    poll_s: float = 10,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Print status changes and log lines until the job ends; return its description."""
    return follow(
        session.client("sagemaker"),
        session.client("logs"),
        job_name,
        str(session.region_name),
        poll_s,
        show or _print_now,
    )


def follow(
    sagemaker: Any,
    logs: Any,
    job_name: str,
    region: str,
    poll_s: float,
    show: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """`follow_training_job` on these clients, until the job ends or its deadline passes
    (its own time limit and the time SageMaker takes around it: waits.job_wait_s)."""
    follower = LogFollower(logs, job_name)
    last_status = None
    deadline: Deadline | None = None
    while True:
        described = sagemaker.describe_training_job(TrainingJobName=job_name)
        if deadline is None:
            seconds, why = job_wait_s(described)
            deadline = Deadline(seconds, f"training job {job_name}", why, clock)
        status = (described["TrainingJobStatus"], described.get("SecondaryStatus"))
        if status != last_status:
            message = latest_status_message(described)
            show(f"Status: {status[0]} / {status[1]}{' - ' + message if message else ''}")
            last_status = status
        for line in follower.new_lines():
            show(line)
        if described["TrainingJobStatus"] in TERMINAL:
            return dict(described)
        if deadline.passed:
            raise deadline.expired(
                " / ".join(filter(None, status)),
                f"Look at it: aws sagemaker describe-training-job --region {region} "
                f"--training-job-name {job_name}; stop it: aws sagemaker stop-training-job "
                f"--region {region} --training-job-name {job_name}",
            )
        sleep(poll_s)


def latest_status_message(described: Mapping[str, Any]) -> str:
    transitions = described.get("SecondaryStatusTransitions") or []
    return str(transitions[-1].get("StatusMessage", "")) if transitions else ""


def _print_now(line: str) -> None:
    print(line, flush=True)
