"""A model package's approval: what `deploy --model-package` checks before it serves one.

The statuses are the model registry's (launch.mlops.model_registry registers and approves);
deploy serves Approved packages only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launch.common.errors import AwsError

if TYPE_CHECKING:
    import boto3


APPROVED = "Approved"


PENDING = "PendingManualApproval"


def check_approved(session: boto3.session.Session, arn: str) -> dict[str, Any]:
    """The package's description; an error that says why when it is not Approved."""
    from launch.common.aws import describe_or_none

    described = describe_or_none(
        session.client("sagemaker").describe_model_package, ModelPackageName=arn
    )
    if described is None:
        raise AwsError(
            f"Model package {arn}: no such package in {session.region_name}; copy "
            "the ARN that `register` printed."
        )
    status = described.get("ModelApprovalStatus", "")
    if status == APPROVED:
        return described
    why = f" ({described['ApprovalDescription']})" if described.get("ApprovalDescription") else ""
    if status == PENDING:
        raise AwsError(
            f"Model package {arn} is {PENDING}: deploy serves Approved packages only. Check "
            f"its metrics, then: python -m launch approve --package {arn}"
        )
    raise AwsError(
        f"Model package {arn} is {status or 'without a status'}{why}: deploy serves "
        "Approved packages only; register and approve another version."
    )
