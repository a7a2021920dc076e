"""`add-model` when another run adds the same name at the same time (issue 22, defect 13):
the write is conditional (S3's If-None-Match: *), so one of them wins and the other says so,
against a moto server on loopback, which honours the condition.

"At the same time" is certain by construction in the first test: the other run's model
lands between this run's check (HeadObject) and its write, from a hook on the HeadObject
answer. The second test runs two real `python -m launch add-model` processes at once; one
exits 0 and the other 1, whichever order the server sees them in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from launch import cli
from tests.support.archives import tar_gz
from tests.support.moto_server import (
    BUCKET,
    REGION,
    MotoServer,
    clean_aws,
    moto_session,
    running_moto_server,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE_KEY = "smvision/training/job/output/model.tar.gz"
PREFIX = f"s3://{BUCKET}/smvision/models/"
DESTINATION_KEY = "smvision/models/site-9.tar.gz"


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    yield from running_moto_server(tmp_path_factory)


@pytest.fixture
def aws(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    return clean_aws(moto_server, tmp_path, monkeypatch)


def s3() -> Any:
    return boto3.session.Session(region_name=REGION).client("s3")


def archive(folder: Path, text: str) -> bytes:
    """A model.tar.gz whose metadata.json says `text`."""
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(f'{{"run": "{text}"}}')
    return tar_gz(folder)


def model_data(kind: str, tmp_path: Path) -> str:
    """This run's model.tar.gz: in S3, or a file on this machine."""
    ours = archive(tmp_path / "ours", "this run")
    if kind == "s3":
        s3().put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=ours)
        return f"s3://{BUCKET}/{SOURCE_KEY}"
    path = tmp_path / "model.tar.gz"
    path.write_bytes(ours)
    return str(path)


def add_model(source: str) -> list[str]:
    return [
        "add-model",
        "--region",
        REGION,
        "--model-data",
        source,
        "--model-prefix",
        PREFIX,
        "--name",
        "site-9",
    ]


@pytest.mark.parametrize("kind", ["s3", "local"])
def test_a_model_added_between_the_check_and_the_write_is_not_replaced(
    kind: str, aws: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = model_data(kind, tmp_path)
    theirs = archive(tmp_path / "theirs", "the other run")

    def other_run_writes_now(http_response: Any, **_: Any) -> None:
        if http_response.status_code == 404:  # this run found no site-9: the other one adds it
            s3().put_object(Bucket=BUCKET, Key=DESTINATION_KEY, Body=theirs)

    def session(region: str) -> Any:
        found = moto_session(region)
        found.events.register("after-call.s3.HeadObject", other_run_writes_now)
        return found

    code = cli.main(add_model(source), open_session=session)
    output = capsys.readouterr()
    assert code == 1, output.out + output.err
    assert (
        f"{PREFIX}site-9.tar.gz was added by someone else while this run wrote it; an endpoint "
        "that loaded it keeps serving its copy, so give the new model a new --name"
    ) in output.err
    assert s3().get_object(Bucket=BUCKET, Key=DESTINATION_KEY)["Body"].read() == theirs
    assert "Uploads" not in s3().list_multipart_uploads(Bucket=BUCKET)  # none left behind


def test_two_runs_adding_one_name_at_once_one_wins(aws: MotoServer, tmp_path: Path) -> None:
    sources = []
    for run in ("first", "second"):
        path = tmp_path / run / "model.tar.gz"
        data = archive(tmp_path / run / "model", run)
        path.write_bytes(data)
        sources.append((path, data))
    env = dict(os.environ)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "launch", *add_model(str(path))],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path, _ in sources
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 1], outputs
    winner = sources[codes.index(0)][1]
    assert s3().get_object(Bucket=BUCKET, Key=DESTINATION_KEY)["Body"].read() == winner
    assert "site-9.tar.gz" in outputs[codes.index(1)] and "--name" in outputs[codes.index(1)]


@pytest.mark.parametrize("kind", ["s3", "local"])
def test_a_model_of_several_parts_arrives_whole(kind: str, aws: MotoServer, tmp_path: Path) -> None:
    from launch.common.parsing import S3Uri
    from launch.hosting.add_model import write_if_absent

    data = os.urandom(11 * 1024 * 1024)  # three parts of 5 MiB, S3's smallest but the last
    if kind == "s3":
        s3().put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=data)
        source = f"s3://{BUCKET}/{SOURCE_KEY}"
    else:
        (tmp_path / "model.tar.gz").write_bytes(data)
        source = str(tmp_path / "model.tar.gz")
    aws.forget_requests()
    write_if_absent(s3(), source, S3Uri(BUCKET, DESTINATION_KEY), part_bytes=5 * 1024 * 1024)
    assert s3().get_object(Bucket=BUCKET, Key=DESTINATION_KEY)["Body"].read() == data
    assert [r.method for r in aws.requests()].count("PUT") == 3
