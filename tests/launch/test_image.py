"""docker/build_and_push.sh against a moto server: the ECR half for real, the engine half dry.

The script's ECR steps (create the repository if missing, get a login token) run
against the server. Building and pushing need a container engine and a registry,
neither reachable from these machines' tests: DRY_RUN=1 prints those engine commands,
and the test checks them. The image build itself is tested with the Dockerfile.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.support.moto_server import ACCOUNT, REGION, MotoServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docker" / "build_and_push.sh"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"


def build_and_push(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        env={**os.environ, "DRY_RUN": "1", **env},
    )


def repositories() -> list[str]:
    ecr = boto3.session.Session(region_name=REGION).client("ecr")
    return [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]


def test_creates_the_repository_logs_in_builds_for_amd64_and_pushes(aws: MotoServer) -> None:
    run = build_and_push("gpu", "2026-11-25", SMVISION_REGION=REGION)

    assert run.returncode == 0, run.stderr
    image = f"{REGISTRY}/smvision:2026-11-25"
    assert run.stdout == image + "\n"
    assert run.stderr.splitlines() == [
        "Created ECR repository smvision",
        f"+ docker login --username AWS --password-stdin {REGISTRY}",
        f"+ docker build --platform linux/amd64 --build-arg DEVICE=gpu -t {image} {ROOT}",
        f"+ docker push {image}",
    ]
    assert aws.operations() == [
        "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
        "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
    ]
    assert repositories() == ["smvision"]


def test_an_existing_repository_is_reused_and_the_engine_is_chosen(aws: MotoServer) -> None:
    boto3.session.Session(region_name=REGION).client("ecr").create_repository(
        repositoryName="team/smvision"
    )
    run = build_and_push(
        SMVISION_REGION=REGION, SMVISION_REPOSITORY="team/smvision", CONTAINER_ENGINE="podman"
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout == f"{REGISTRY}/team/smvision:cpu\n"
    assert "Created" not in run.stderr
    assert "+ podman build --platform linux/amd64 --build-arg DEVICE=cpu" in run.stderr
    assert repositories() == ["team/smvision"]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["tpu"], {"SMVISION_REGION": REGION}, "usage: "),
        (["cpu", "bad tag"], {"SMVISION_REGION": REGION}, "tag 'bad tag' is not a valid image tag"),
        (
            [],
            {"SMVISION_REGION": REGION, "SMVISION_REPOSITORY": "Bad_Name"},
            "ECR repository name 'Bad_Name' is not valid",
        ),
        ([], {"SMVISION_REGION": ""}, "set SMVISION_REGION"),
    ],
)
def test_bad_arguments_stop_before_any_aws_call(
    aws: MotoServer, args: list[str], env: dict[str, str], expected: str
) -> None:
    run = build_and_push(*args, **env)
    assert run.returncode != 0
    assert expected in run.stderr
    assert run.stdout == ""
    assert aws.requests() == []
