"""Amazon ECR for docker/build_and_push.sh, through boto3 (no AWS CLI needed).

    python -m launch.common.ecr repository NAME   create NAME if missing; print its URI
    python -m launch.common.ecr password          print a docker login password for ECR

The region is SMVISION_REGION, as for the launchers.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
from collections.abc import Sequence

from launch.common.errors import LaunchError
from launch.common.settings import resolve

_REPOSITORY = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")


def repository_name(text: str) -> str:
    if len(text) > 256 or not _REPOSITORY.fullmatch(text):
        raise LaunchError(
            f"ECR repository name '{text}' is not valid; use lowercase letters, digits and "
            "'.', '_', '-' or '/' between them, such as smvision or ml/smvision."
        )
    return text


def repository_uri(ecr: object, name: str) -> str:
    from botocore.exceptions import ClientError

    from launch.common.aws import error_code, reporting

    try:
        found = ecr.describe_repositories(repositoryNames=[name])  # type: ignore[attr-defined]
        return str(found["repositories"][0]["repositoryUri"])
    except ClientError as error:
        if error_code(error) != "RepositoryNotFoundException":
            with reporting(f"Looking up ECR repository {name}"):
                raise
    with reporting(f"Creating ECR repository {name}"):
        created = ecr.create_repository(  # type: ignore[attr-defined]
            repositoryName=name, imageScanningConfiguration={"scanOnPush": True}
        )
    print(f"Created ECR repository {name}", file=sys.stderr)
    return str(created["repository"]["repositoryUri"])


def login_password(ecr: object) -> str:
    from launch.common.aws import reporting

    with reporting("Getting an ECR login token"):
        data = ecr.get_authorization_token()["authorizationData"][0]  # type: ignore[attr-defined]
    _, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return password


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m launch.common.ecr",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    repository = commands.add_parser("repository", help="create if missing, print the URI")
    repository.add_argument("name", help="repository name, such as smvision")
    commands.add_parser("password", help="print a docker login password for ECR")
    args = parser.parse_args(argv)
    try:
        name = repository_name(args.name) if args.command == "repository" else ""
        region = resolve({}, os.environ, None).require("region")
        from launch.common.aws import open_session

        ecr = open_session(region).client("ecr")
        if name:
            print(repository_uri(ecr, name))
        else:
            print(login_password(ecr))
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
