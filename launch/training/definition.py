"""A training job as SageMaker receives it, defined once for `train`, `tune` and `train --local`.

`JobDefinition` turns a `JobSpec` into the SDK's objects: the algorithm specification
(the image and the metric definitions), the channels, the output config, the
resources, the stopping condition, spot and checkpoints. Every job writes its model
GZIP-compressed, as the model.tar.gz that `deploy` and `transform` take.

Why the resources API (`sagemaker.core.resources`) and not `ModelTrainer` with
`HyperparameterTuner` (read in sagemaker 3.27): the tuner accepts a ModelTrainer only,
never a job definition, and rebuilds the definition from the trainer attribute by
attribute (`HyperparameterTuner._build_training_job_definition`), re-spelling the static
hyperparameters with `str()`; and `ModelTrainer.train` names its job BASE-TIMESTAMP,
where `--job-name` is the exact name. So a SageMaker job is created here, from one set
of shapes: `TrainingJob.create` for `train`, and `HyperParameterTuningJob.create` with a
`HyperParameterTrainingJobDefinition` for `tune`, whose training jobs are then defined
exactly as `train` defines its own. A local run goes through `ModelTrainer` in local
mode, the SDK's one way to run a training container in Docker, given the same image,
hyperparameters, channels and compute; what only SageMaker has (a role, S3 output,
spot, checkpoints, a time limit) does not apply there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.training.spec import ChannelSource, JobSpec
from smvision.core import contract
from smvision.core.metrics import METRIC_DEFINITIONS

if TYPE_CHECKING:
    import boto3

# model.tar.gz: what users expect, and what `deploy --model-data` asks for.
OUTPUT_COMPRESSION = "GZIP"
VOLUME_SIZE_GB = 30
# The job's default; each channel names its own (launch.training.spec.ChannelSource).
INPUT_MODE = contract.FILE_MODE


@dataclass(frozen=True)
class JobDefinition:
    spec: JobSpec
    role: str
    output_uri: str
    spot: bool = False
    max_wait_s: int | None = None
    checkpoint_uri: str | None = None

    @property
    def hyperparameters(self) -> Mapping[str, str]:
        return self.spec.hyperparameters

    def create_training_job(self, session: boto3.session.Session, name: str) -> Any:
        """Start the job on SageMaker (`train`); the SDK's TrainingJob resource."""
        from sagemaker.core import shapes
        from sagemaker.core.resources import TrainingJob

        return TrainingJob.create(
            session=session,
            region=str(session.region_name),
            training_job_name=name,
            algorithm_specification=shapes.AlgorithmSpecification(
                training_image=self.spec.image_uri,
                training_input_mode=INPUT_MODE,
                metric_definitions=_metric_definitions(),
            ),
            hyper_parameters=dict(self.hyperparameters),
            **self._shared_shapes(),
        )

    def tuning_training_job(self) -> Any:
        """The definition of every training job of a tuning job (`tune`): the same job,
        with the user's hyperparameters as its static ones."""
        from sagemaker.core import shapes

        return shapes.HyperParameterTrainingJobDefinition(
            algorithm_specification=shapes.HyperParameterAlgorithmSpecification(
                training_image=self.spec.image_uri,
                training_input_mode=INPUT_MODE,
                metric_definitions=_metric_definitions(),
            ),
            static_hyper_parameters=dict(self.hyperparameters),
            **self._shared_shapes(),
        )

    def _shared_shapes(self) -> dict[str, Any]:
        from sagemaker.core import shapes

        spec = self.spec
        return {
            "role_arn": self.role,
            "input_data_config": [
                s3_channel(name, source) for name, source in spec.channels.items()
            ],
            "output_data_config": shapes.OutputDataConfig(
                s3_output_path=self.output_uri, compression_type=OUTPUT_COMPRESSION
            ),
            "resource_config": shapes.ResourceConfig(
                instance_type=spec.instance_type,
                instance_count=spec.instance_count,
                volume_size_in_gb=VOLUME_SIZE_GB,
            ),
            "stopping_condition": shapes.StoppingCondition(
                max_runtime_in_seconds=spec.max_run_s, max_wait_time_in_seconds=self.max_wait_s
            ),
            "enable_managed_spot_training": self.spot,
            "checkpoint_config": (
                shapes.CheckpointConfig(
                    s3_uri=self.checkpoint_uri, local_path=contract.DEFAULT_CHECKPOINT_DIR
                )
                if self.checkpoint_uri
                else None
            ),
        }

    def pipeline_trainer(self, session: Any, hyperparameters: Mapping[str, Any]) -> Any:
        """The same job as a pipeline's training step: a ModelTrainer under a
        PipelineSession, its hyperparameters pipeline parameters (channels come with
        `train()`). Spot and checkpoints are for `train` alone."""
        from sagemaker.core.training.configs import (
            Compute,
            OutputDataConfig,
            StoppingCondition,
        )
        from sagemaker.train.model_trainer import ModelTrainer

        spec = self.spec
        trainer = ModelTrainer(
            training_image=spec.image_uri,
            training_input_mode=INPUT_MODE,
            role=self.role,
            sagemaker_session=session,
            compute=Compute(
                instance_type=spec.instance_type,
                instance_count=spec.instance_count,
                volume_size_in_gb=VOLUME_SIZE_GB,
            ),
            hyperparameters=dict(hyperparameters),
            output_data_config=OutputDataConfig(
                s3_output_path=self.output_uri, compression_type=OUTPUT_COMPRESSION
            ),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.max_run_s),
            base_job_name=f"smvision-{spec.algorithm}",
        )
        return trainer.with_metric_definitions(_metric_definitions())


def local_trainer(spec: JobSpec, root: Path, base_job_name: str) -> Any:
    """A ModelTrainer that runs the job in Docker on this machine, its files under `root`;
    the channels are local folders."""
    from sagemaker.core.training.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode, ModelTrainer

    return ModelTrainer(
        training_image=spec.image_uri,
        training_mode=Mode.LOCAL_CONTAINER,
        training_input_mode=INPUT_MODE,
        compute=Compute(instance_type=spec.instance_type, instance_count=spec.instance_count),
        local_container_root=str(root),
        hyperparameters=dict(spec.hyperparameters),
        input_data_config=[
            InputData(channel_name=name, data_source=str(Path(source.uri).resolve()))
            for name, source in spec.channels.items()
        ],
        base_job_name=base_job_name,
    )


def _metric_definitions() -> list[Any]:
    from sagemaker.core import shapes

    return [shapes.MetricDefinition(name=d["Name"], regex=d["Regex"]) for d in METRIC_DEFINITIONS]


def s3_channel(name: str, source: ChannelSource) -> Any:
    """A channel: an S3 prefix (File, FastFile or Pipe), or an augmented manifest streamed in
    Pipe mode, each of its attributes a RecordIO record."""
    from sagemaker.core import shapes

    manifest = source.is_manifest
    return shapes.Channel(
        channel_name=name,
        data_source=shapes.DataSource(
            s3_data_source=shapes.S3DataSource(
                s3_data_type=contract.AUGMENTED_MANIFEST if manifest else "S3Prefix",
                s3_uri=source.uri,
                s3_data_distribution_type="FullyReplicated",
                attribute_names=list(source.attribute_names) if manifest else None,
            )
        ),
        input_mode=source.input_mode,
        record_wrapper_type=contract.RECORDIO_WRAPPER if manifest else None,
        content_type=source.content_type,
    )
