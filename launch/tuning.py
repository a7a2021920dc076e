"""`tune`: a hyperparameter tuning job over the image, maximising validation:accuracy.

Built with `sagemaker.train.ModelTrainer` (the job template) and
`sagemaker.train.tuner.HyperparameterTuner`; the ranges are `sagemaker.core.parameter`
objects made from the schema's tuning ranges and any --range overrides.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.errors import AwsError, LaunchError
from launch.jobs import JobSpec, add_job_arguments, job_spec, multi_host_warning
from launch.parsing import positive_int, resource_name, timestamped_name
from launch.ranges import describe_ranges, plan_ranges
from launch.settings import Settings
from smvision.hyperparameters import TuningRange, schema
from smvision.metrics import METRIC_DEFINITIONS

if TYPE_CHECKING:
    import boto3

    from launch.aws import SessionFactory

HELP = "start a hyperparameter tuning job and print the best job, its hyperparameters and model"
OBJECTIVE_METRIC = "validation:accuracy"
STRATEGIES = ("Bayesian", "Random", "Hyperband")
# Every epoch of these reports validation:accuracy: Hyperband's resource is their sum
# (resnet50 trains its head for `epochs`, then fine-tunes for `fine_tune_epochs`).
EPOCH_PARAMETERS = ("epochs", "fine_tune_epochs")
# Tuning job names are limited to 32 characters.
TUNING_NAME_LENGTH = 32


@dataclass(frozen=True)
class TuningPlan:
    job_name: str
    spec: JobSpec
    ranges: Mapping[str, TuningRange]
    strategy: str
    max_jobs: int
    max_parallel_jobs: int
    wait: bool

    @property
    def early_stopping(self) -> str:
        # Hyperband stops jobs by itself; SageMaker requires early stopping Off with it.
        return "Off" if self.strategy == "Hyperband" else "Auto"

    @property
    def static_hyperparameters(self) -> dict[str, str]:
        return dict(self.spec.hyperparameters)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser("tune", parents=parents, help=HELP, description=HELP + ".")
    add_job_arguments(parser)
    parser.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH",
                        help="search NAME between LOW and HIGH (append :Linear or "
                        ":Logarithmic to choose the scaling), or among NAME=a,b,c; replaces "
                        "the schema's default range for NAME. --hp NAME=VALUE fixes NAME "
                        "instead")
    parser.add_argument("--strategy", default="Bayesian", choices=STRATEGIES,
                        help="search strategy (default Bayesian; Hyperband is for cnn and "
                        "resnet50, whose epochs it budgets)")
    parser.add_argument("--max-jobs", default="10", metavar="N",
                        help="training jobs in all (default 10)")
    parser.add_argument("--max-parallel-jobs", default="2", metavar="N",
                        help="training jobs at a time (default 2)")
    parser.add_argument("--job-name", metavar="NAME",
                        help=f"the tuning job's exact name, up to {TUNING_NAME_LENGTH} characters "
                        "(default smvision-ALGORITHM-TIMESTAMP)")
    parser.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                        help="wait for the tuning job and print the best job (default --wait)")
    parser.set_defaults(handler=run)


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> TuningPlan:
    spec = job_spec(args, settings)
    fixed = {k: v for k, v in spec.hyperparameters.items() if k != "algorithm"}
    ranges = plan_ranges(spec.algorithm, fixed, args.range)
    if args.strategy == "Hyperband" and not set(EPOCH_PARAMETERS) & set(schema(spec.algorithm)):
        raise LaunchError(
            f"--strategy Hyperband budgets training epochs, and {spec.algorithm} trains in one "
            "step; use --strategy Bayesian or Random."
        )
    budgeted = [name for name in EPOCH_PARAMETERS if name in ranges]
    if args.strategy == "Hyperband" and budgeted:
        raise LaunchError(f"--strategy Hyperband budgets epochs itself; drop --range "
                          f"{budgeted[0]}=... (fix it with --hp if needed).")
    if "validation" not in spec.channels and _validation_fraction(spec) == 0:
        raise LaunchError(
            f"The objective {OBJECTIVE_METRIC} needs validation data, but there is no "
            "--validation channel and validation_fraction is 0; add one or the other."
        )
    max_jobs = positive_int(args.max_jobs, "--max-jobs")
    max_parallel = positive_int(args.max_parallel_jobs, "--max-parallel-jobs")
    if max_parallel > max_jobs:
        raise LaunchError(
            f"--max-parallel-jobs {max_parallel} is more than --max-jobs {max_jobs}; lower it."
        )
    name = (resource_name(args.job_name, "--job-name", TUNING_NAME_LENGTH) if args.job_name
            else timestamped_name(f"smvision-{spec.algorithm}", now, TUNING_NAME_LENGTH))
    return TuningPlan(name, spec, ranges, args.strategy, max_jobs, max_parallel, bool(args.wait))


def _validation_fraction(spec: JobSpec) -> float:
    param = schema(spec.algorithm)["validation_fraction"]
    raw = spec.hyperparameters.get("validation_fraction")
    return float(str(param.parse(raw) if raw is not None else param.default))


def reported_epochs(spec: JobSpec) -> int:
    """How many epochs report validation:accuracy in one training job."""
    params = schema(spec.algorithm)
    total = 0
    for name in EPOCH_PARAMETERS:
        if name in params:
            raw = spec.hyperparameters.get(name)
            total += int(str(params[name].parse(raw) if raw is not None else params[name].default))
    return total


def run(args: argparse.Namespace, settings: Settings, open_session: SessionFactory) -> int:
    tuning = plan(args, settings, datetime.now())
    warning = multi_host_warning(tuning.spec.algorithm, tuning.spec.instance_count)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return submit(tuning, open_session(settings.require("region")))


def parameter_ranges(ranges: Mapping[str, TuningRange]) -> dict[str, Any]:
    from sagemaker.core.parameter import (
        CategoricalParameter,
        ContinuousParameter,
        IntegerParameter,
    )

    result: dict[str, Any] = {}
    for name, r in ranges.items():
        if r.kind == "categorical":
            result[name] = CategoricalParameter(list(r.values))
        elif r.kind == "integer":
            assert r.low is not None and r.high is not None
            result[name] = IntegerParameter(int(r.low), int(r.high), r.scaling)
        else:
            assert r.low is not None and r.high is not None
            result[name] = ContinuousParameter(float(r.low), float(r.high), r.scaling)
    return result


def submit(tuning: TuningPlan, session: boto3.session.Session) -> int:
    from sagemaker.core.helper.session_helper import Session
    from sagemaker.core.shapes import HyperbandStrategyConfig, HyperParameterTuningJobStrategyConfig
    from sagemaker.core.training.configs import (
        Compute,
        InputData,
        OutputDataConfig,
        StoppingCondition,
    )
    from sagemaker.train import ModelTrainer
    from sagemaker.train.tuner import HyperparameterTuner

    from launch.aws import console_url, reporting, show_sdk_progress

    spec = tuning.spec
    region = str(session.region_name)
    show_sdk_progress()
    print(f"Tuning job {tuning.job_name}: {spec.algorithm}, {tuning.strategy}, "
          f"{tuning.max_jobs} jobs ({tuning.max_parallel_jobs} at a time) on "
          f"{spec.instance_count} x {spec.instance_type}; maximising {OBJECTIVE_METRIC} over:")
    print("\n".join(describe_ranges(tuning.ranges)), flush=True)
    strategy_config = None
    if tuning.strategy == "Hyperband":
        strategy_config = HyperParameterTuningJobStrategyConfig(
            hyperband_strategy_config=HyperbandStrategyConfig(
                min_resource=1, max_resource=reported_epochs(spec)
            )
        )
    with reporting(f"Creating tuning job {tuning.job_name}"):
        trainer = ModelTrainer(
            sagemaker_session=Session(boto_session=session, default_bucket=spec.bucket),
            role=spec.role,
            training_image=spec.image_uri,
            base_job_name=f"smvision-{spec.algorithm}",
            compute=Compute(instance_type=spec.instance_type,
                            instance_count=spec.instance_count, volume_size_in_gb=30),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=spec.max_run_s),
            output_data_config=OutputDataConfig(s3_output_path=spec.output_uri("tuning"),
                                                compression_type="GZIP"),
            hyperparameters=tuning.static_hyperparameters,
        )
        tuner = HyperparameterTuner(
            model_trainer=trainer,
            objective_metric_name=OBJECTIVE_METRIC,
            objective_type="Maximize",
            hyperparameter_ranges=parameter_ranges(tuning.ranges),
            metric_definitions=[dict(d) for d in METRIC_DEFINITIONS],
            strategy=tuning.strategy,
            strategy_config=strategy_config,
            max_jobs=tuning.max_jobs,
            max_parallel_jobs=tuning.max_parallel_jobs,
            early_stopping_type=tuning.early_stopping,
        )
        tuner.tune(
            inputs=[InputData(channel_name=n, data_source=u) for n, u in spec.channels.items()],
            job_name=tuning.job_name,
            wait=False,
        )
    print(f"Console: {console_url(region, 'hyper-tuning-jobs/' + tuning.job_name)}", flush=True)
    if not tuning.wait:
        print(f"Not waiting. Status: aws sagemaker describe-hyper-parameter-tuning-job "
              f"--region {region} --hyper-parameter-tuning-job-name {tuning.job_name}")
        return 0
    job = tuner.latest_tuning_job
    with reporting(f"Tuning job {tuning.job_name}"):
        job.wait()
        job.refresh()
    return report_best(job, tuning, session)


def report_best(job: Any, tuning: TuningPlan, session: boto3.session.Session) -> int:
    from sagemaker.core.utils.utils import Unassigned

    from launch.aws import reporting

    status = job.hyper_parameter_tuning_job_status
    best = job.best_training_job
    if status != "Completed" or isinstance(best, Unassigned) or best is None:
        reason = job.failure_reason
        detail = "" if isinstance(reason, Unassigned) or not reason else f": {reason}"
        raise AwsError(f"Tuning job {tuning.job_name} ended {status} with no best "
                       f"training job{detail}")
    objective = best.final_hyper_parameter_tuning_job_objective_metric
    print(f"Status: {status}")
    print(f"Best training job: {best.training_job_name}")
    if not isinstance(objective, Unassigned):
        print(f"  {objective.metric_name} = {objective.value:g}")
    print("Hyperparameters:")
    chosen = tuning.static_hyperparameters | dict(best.tuned_hyper_parameters or {})
    for key, value in sorted(chosen.items()):
        print(f"  {key} = {value}")
    sagemaker = session.client("sagemaker")
    with reporting(f"Describing the best training job {best.training_job_name}"):
        described = sagemaker.describe_training_job(TrainingJobName=best.training_job_name)
    print(f"Model artifact: {described['ModelArtifacts']['S3ModelArtifacts']}")
    return 0
