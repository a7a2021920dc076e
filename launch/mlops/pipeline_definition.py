"""The retraining pipeline as SageMaker Pipelines receives it, built with the SDK v3's
workflow classes (the SDK imported inside the functions that build: seconds to import).

    Train          TrainingStep: the job `train` would run (launch.training.definition), its channel
                   URIs and hyperparameters pipeline parameters
    Evaluate       ProcessingStep: the image's `gate` over the job's output.tar.gz; writes
                   gate.json (the property file) and model_quality.json
    CheckAccuracy  ConditionStep: the new accuracy >= AccuracyThreshold, and >= the latest
                   approved version's (0 when there is none)
      Register       RegisterModel: the CreateModelPackage request `register` sends
      NotRegistered  FailStep: the execution fails, its message giving the numbers

Why Register is a Step of its own: ModelStep takes only what `ModelBuilder.register()`
produces, which adds script-mode variables (SAGEMAKER_PROGRAM, SAGEMAKER_REGION, ...) to
the container and empty Bias/Explainability metrics; this step sends exactly the request
`register` sends (launch.mlops.model_registry.package_request), so both register the same package.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from launch.mlops.model_registry import package_request
from launch.training.definition import JobDefinition, s3_channel
from launch.training.spec import OUTPUT_ROOT
from smvision.core import contract, model_quality

if TYPE_CHECKING:
    import boto3

# The pipeline's parameter and step names, which `pipeline start` and `status` use too.
THRESHOLD = "AccuracyThreshold"
CHANNEL_PARAMETERS = {
    "train": "TrainData",
    "validation": "ValidationData",
    "test": "TestData",
    "pretrained": "PretrainedData",
}
TRAINING_STEP = "Train"
TRAIN = TRAINING_STEP
EVALUATE, CHECK, REGISTER, NOT_REGISTERED = (
    "Evaluate",
    "CheckAccuracy",
    "Register",
    "NotRegistered",
)
GROUP = "ModelPackageGroup"
APPROVAL = "ModelApprovalStatus"
EVALUATION_OUTPUT = "evaluation"
GATE_ENTRYPOINT = ["gate"]
EVALUATION_INSTANCE_TYPE = "ml.m5.large"


@dataclass(frozen=True)
class PipelineSpec:
    """What `pipeline create` builds: the training job, the group and the defaults."""

    name: str
    job: JobDefinition
    group: str
    threshold: float
    approval: str
    bucket: str
    region: str


def register_model_step(name: str, request: Mapping[str, Any]) -> Any:
    """A RegisterModel step that sends `request` (a CreateModelPackage request whose values
    may be pipeline variables) as it is. The class is made here because the SDK is imported
    only once a pipeline is built."""
    from sagemaker.core.workflow.properties import Properties
    from sagemaker.mlops.workflow.steps import Step, StepTypeEnum

    class RegisterModelPackage(Step):  # type: ignore[misc]  # the SDK is untyped
        def __init__(self) -> None:
            super().__init__(name, step_type=StepTypeEnum.REGISTER_MODEL)
            self._properties = Properties(
                step_name=name, step=self, shape_name="DescribeModelPackageOutput"
            )

        @property
        def arguments(self) -> dict[str, Any]:
            return dict(request)

        @property
        def properties(self) -> Any:
            return self._properties

    return RegisterModelPackage()


@contextmanager
def quiet_pipeline_session() -> Iterator[None]:
    """Without the SDK's warning that a step's job is not started now: that is the point."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")
        yield


@contextmanager
def no_client_side_role_check() -> Iterator[None]:
    """The SDK checks the role from this machine (iam:SimulatePrincipalPolicy) when a
    ModelTrainer is made; the pipeline's jobs run later, under the pipeline's role, so the
    check would say nothing about them, and the launchers' policy does not grant it."""
    previous = os.environ.get("SAGEMAKER_VALIDATE_ROLE")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["SAGEMAKER_VALIDATE_ROLE"]
        else:
            os.environ["SAGEMAKER_VALIDATE_ROLE"] = previous


def build(spec: PipelineSpec, session: boto3.session.Session) -> Any:
    """The SDK's Pipeline object (`definition()` gives what SageMaker receives)."""
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline

    pipeline_session = PipelineSession(boto_session=session, default_bucket=spec.bucket)
    sources = spec.job.spec.channels
    channels = {
        name: ParameterString(CHANNEL_PARAMETERS[name], default_value=source.uri)
        for name, source in sources.items()
    }
    hyperparameters = {
        key: ParameterString(key, default_value=value)
        for key, value in spec.job.hyperparameters.items()
        if key != "algorithm"
    }
    threshold = ParameterFloat(THRESHOLD, default_value=spec.threshold)
    group = ParameterString(GROUP, default_value=spec.group)
    approval = ParameterString(APPROVAL, default_value=spec.approval)

    with no_client_side_role_check():
        trainer = spec.job.pipeline_trainer(
            pipeline_session, {"algorithm": spec.job.spec.algorithm, **hyperparameters}
        )
    # Each channel as `train` sends it (input mode, manifest attributes), its S3 location a
    # pipeline parameter so that `pipeline start` can point it at new data.
    train = _training_step(
        trainer,
        [s3_channel(name, replace(sources[name], uri=uri)) for name, uri in channels.items()],
    )
    gate = PropertyFile(name="Gate", output_name=EVALUATION_OUTPUT, path=model_quality.GATE_FILE)
    evaluate = _evaluation_step(spec, pipeline_session, train, group, gate)

    def reading(path: str) -> Any:
        return JsonGet(step_name=EVALUATE, property_file=gate, json_path=path)

    new, approved = reading(model_quality.NEW_ACCURACY), reading(model_quality.APPROVED_ACCURACY)
    register = register_model_step(
        REGISTER,
        package_request(
            group=group,
            image=spec.job.spec.image_uri,
            model_data_url=train.properties.ModelArtifacts.S3ModelArtifacts,
            algorithm=spec.job.spec.algorithm,
            statistics_uri=Join(
                on="/",
                values=[
                    evaluate.properties.ProcessingOutputConfig.Outputs[
                        EVALUATION_OUTPUT
                    ].S3Output.S3Uri,
                    model_quality.FILE,
                ],
            ),
            approval=approval,
            metadata={"training_job": train.properties.TrainingJobName},
        ),
    )
    not_registered = FailStep(
        NOT_REGISTERED,
        error_message=Join(
            on="",
            values=[
                "The new model was not registered: its accuracy ",
                new,
                " must reach ",
                THRESHOLD,
                " ",
                threshold,
                " and the latest approved version's ",
                approved,
                " (",
                reading(model_quality.APPROVED_PACKAGE),
                ").",
            ],
        ),
    )
    check = ConditionStep(
        CHECK,
        conditions=[
            ConditionGreaterThanOrEqualTo(left=new, right=threshold),
            ConditionGreaterThanOrEqualTo(left=new, right=approved),
        ],
        if_steps=[register],
        else_steps=[not_registered],
    )
    return Pipeline(
        name=spec.name,
        parameters=[*channels.values(), *hyperparameters.values(), threshold, group, approval],
        steps=[train, evaluate, check],
        sagemaker_session=pipeline_session,
    )


def _training_step(trainer: Any, channels: list[Any]) -> Any:
    from sagemaker.mlops.workflow.steps import TrainingStep

    with quiet_pipeline_session():
        arguments = trainer.train(input_data_config=channels)
    return TrainingStep(TRAIN, step_args=arguments)


def _evaluation_step(
    spec: PipelineSpec, pipeline_session: Any, train: Any, group: Any, gate: Any
) -> Any:
    """The image's `gate` over the training job's output.tar.gz."""
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.steps import ProcessingStep

    processor = Processor(
        role=spec.job.role,
        image_uri=spec.job.spec.image_uri,
        instance_count=1,
        instance_type=EVALUATION_INSTANCE_TYPE,
        entrypoint=GATE_ENTRYPOINT,
        sagemaker_session=pipeline_session,
        base_job_name=f"{spec.name}-evaluate",
    )
    training_output = Join(
        on="/",
        values=[
            train.properties.OutputDataConfig.S3OutputPath,
            train.properties.TrainingJobName,
            "output",
            "output.tar.gz",
        ],
    )
    name = contract.TRAINING_OUTPUT_INPUT
    with quiet_pipeline_session():
        arguments = processor.run(
            inputs=[
                ProcessingInput(
                    input_name=name,
                    s3_input=ProcessingS3Input(
                        s3_uri=training_output,
                        s3_data_type="S3Prefix",
                        s3_input_mode="File",
                        local_path=f"{contract.DEFAULT_PROCESSING_INPUT_DIR}/{name}",
                    ),
                )
            ],
            outputs=[
                ProcessingOutput(
                    output_name=EVALUATION_OUTPUT,
                    s3_output=ProcessingS3Output(
                        s3_uri=Join(
                            on="/",
                            values=[
                                f"s3://{spec.bucket}/{OUTPUT_ROOT}/pipelines/{spec.name}",
                                ExecutionVariables.PIPELINE_EXECUTION_ID,
                                EVALUATION_OUTPUT,
                            ],
                        ),
                        local_path=contract.DEFAULT_PROCESSING_OUTPUT_DIR,
                        s3_upload_mode="EndOfJob",
                    ),
                )
            ],
            arguments=["--group", group, "--region", spec.region],
        )
    return ProcessingStep(EVALUATE, step_args=arguments, property_files=[gate])
