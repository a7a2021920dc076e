"""`tune`: a hyperparameter tuning job over the image, optimising a validation metric
(--objective: validation:accuracy unless eval_metric names another).

Its training jobs are defined by `launch.training.definition.JobDefinition`, as `train` defines
its job, and the tuning job is created with
`sagemaker.core.resources.HyperParameterTuningJob.create` (see launch.training.definition for why
not `HyperparameterTuner`); the ranges are the schema's tuning ranges and any --range
overrides.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from launch.common import options
from launch.common.errors import AwsError, LaunchError
from launch.common.parsing import positive_int
from launch.common.settings import Settings
from launch.common.waits import START_AND_FINISH_S
from launch.training import spec as jobs
from launch.training.definition import JobDefinition
from launch.training.ranges import describe_ranges, plan_ranges
from smvision.core import metrics
from smvision.schema.hyperparameters import TuningRange, schema

if TYPE_CHECKING:
    import boto3

HELP = "start a hyperparameter tuning job and print the best job, its hyperparameters and model"
DEFAULT_OBJECTIVE = "validation:accuracy"
OBJECTIVES = tuple(f"validation:{measure}" for measure in metrics.ALL_MEASURES)
STRATEGIES = ("Bayesian", "Random", "Hyperband")
# Every epoch of these reports validation:accuracy: Hyperband's resource is their sum
# (resnet50 trains its head for `epochs`, then fine-tunes for `fine_tune_epochs`).
EPOCH_PARAMETERS = ("epochs", "fine_tune_epochs")
_VERBS = {"Maximize": "maximising", "Minimize": "minimising"}
# Tuning job names are limited to 32 characters.
TUNING_NAME_LENGTH = 32


@dataclass(frozen=True)
class TuningPlan:
    job_name: str
    definition: JobDefinition
    ranges: Mapping[str, TuningRange]
    strategy: str
    max_jobs: int
    max_parallel_jobs: int
    wait: bool
    objective: str = DEFAULT_OBJECTIVE

    @property
    def direction(self) -> str:
        return metrics.direction(self.objective.partition(":")[2])

    @property
    def early_stopping(self) -> str:
        # Hyperband stops jobs by itself; SageMaker requires early stopping Off with it.
        return "Off" if self.strategy == "Hyperband" else "Auto"


def add_parser(commands: options.Commands, parents: list[argparse.ArgumentParser]) -> None:
    parser = options.command_parser(commands, "tune", parents, HELP)
    jobs.add_job_arguments(parser)
    parser.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH",
        help="search NAME between LOW and HIGH (append :Linear or "
        ":Logarithmic to choose the scaling), or among NAME=a,b,c; replaces "
        "the schema's default range for NAME. --hp NAME=VALUE fixes NAME "
        "instead",
    )
    parser.add_argument(
        "--strategy",
        default="Bayesian",
        choices=STRATEGIES,
        help="search strategy (default Bayesian; Hyperband is for cnn and "
        "resnet50, whose epochs it budgets)",
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        metavar="METRIC",
        help="the metric to optimise: validation:accuracy (default; "
        "validation:EVAL_METRIC with --hp eval_metric=..., validation:f1_micro "
        "with --hp multi_label=true), validation:auc and others for two classes; "
        "loss and hamming_loss are minimised. Choices: " + ", ".join(OBJECTIVES),
    )
    parser.add_argument(
        "--max-jobs", default="10", metavar="N", help="training jobs in all (default 10)"
    )
    parser.add_argument(
        "--max-parallel-jobs", default="2", metavar="N", help="training jobs at a time (default 2)"
    )
    options.add_name_argument(
        parser, "the tuning job's exact name", "smvision-ALGORITHM", max_length=TUNING_NAME_LENGTH
    )
    options.add_wait_argument(parser, "the tuning job and print the best job")
    parser.set_defaults(handler=options.planned(plan, submit))


def plan(args: argparse.Namespace, settings: Settings, now: datetime) -> TuningPlan:
    spec = jobs.sagemaker_job_spec(args, settings)
    fixed = {k: v for k, v in spec.hyperparameters.items() if k != "algorithm"}
    ranges = plan_ranges(spec.algorithm, fixed, args.range)
    _check_strategy(args.strategy, spec, ranges)
    objective = args.objective or _default_objective(spec)
    if "validation" not in spec.channels and _validation_fraction(spec) == 0:
        raise LaunchError(
            f"The objective {objective} needs validation data, but there is no "
            "--validation channel and validation_fraction is 0; add one or the other."
        )
    max_jobs = positive_int(args.max_jobs, "--max-jobs")
    max_parallel = positive_int(args.max_parallel_jobs, "--max-parallel-jobs")
    if max_parallel > max_jobs:
        raise LaunchError(
            f"--max-parallel-jobs {max_parallel} is more than --max-jobs {max_jobs}; lower it."
        )
    name = options.chosen_name(
        args.job_name, "--job-name", f"smvision-{spec.algorithm}", now, TUNING_NAME_LENGTH
    )
    definition = JobDefinition(
        spec=spec,
        role=settings.require("role"),
        output_uri=jobs.output_prefix(settings.require("bucket"), "tuning"),
    )
    return TuningPlan(
        name, definition, ranges, args.strategy, max_jobs, max_parallel, bool(args.wait), objective
    )


def _default_objective(spec: jobs.JobSpec) -> str:
    """validation:accuracy; validation:EVAL_METRIC when the job sets eval_metric, and
    validation:f1_micro for a multi-label job."""
    if spec.hyperparameters.get("multi_label") == "true":
        return "validation:f1_micro"
    chosen = spec.hyperparameters.get("eval_metric")
    return f"validation:{chosen}" if chosen else DEFAULT_OBJECTIVE


def _check_strategy(strategy: str, spec: jobs.JobSpec, ranges: Mapping[str, TuningRange]) -> None:
    if strategy != "Hyperband":
        return
    if not set(EPOCH_PARAMETERS) & set(schema(spec.algorithm)):
        raise LaunchError(
            f"--strategy Hyperband budgets training epochs, and {spec.algorithm} trains in one "
            "step; use --strategy Bayesian or Random."
        )
    budgeted = [name for name in EPOCH_PARAMETERS if name in ranges]
    if budgeted:
        raise LaunchError(
            f"--strategy Hyperband budgets epochs itself; drop --range "
            f"{budgeted[0]}=... (fix it with --hp if needed)."
        )


def _validation_fraction(spec: jobs.JobSpec) -> float:
    param = schema(spec.algorithm)["validation_fraction"]
    raw = spec.hyperparameters.get("validation_fraction")
    return float(str(param.parse(raw) if raw is not None else param.default))


def reported_epochs(spec: jobs.JobSpec) -> int:
    """How many epochs report validation:accuracy in one training job."""
    params = schema(spec.algorithm)
    total = 0
    for name in EPOCH_PARAMETERS:
        if name in params:
            raw = spec.hyperparameters.get(name)
            total += int(str(params[name].parse(raw) if raw is not None else params[name].default))
    return total


def submit(tuning: TuningPlan, session: boto3.session.Session) -> int:
    from sagemaker.core.resources import HyperParameterTuningJob

    from launch.common.aws import console_url, print_status_command, reporting
    from launch.common.waits import sdk_deadline

    spec = tuning.definition.spec
    region = str(session.region_name)
    print(
        f"Tuning job {tuning.job_name}: {spec.algorithm}, {tuning.strategy}, "
        f"{tuning.max_jobs} jobs ({tuning.max_parallel_jobs} at a time) on "
        f"{spec.instance_count} x {spec.instance_type}; "
        f"{_VERBS[tuning.direction]} {tuning.objective} over:"
    )
    print("\n".join(describe_ranges(tuning.ranges)), flush=True)
    with reporting(f"Creating tuning job {tuning.job_name}"):
        job = HyperParameterTuningJob.create(
            session=session,
            region=region,
            hyper_parameter_tuning_job_name=tuning.job_name,
            hyper_parameter_tuning_job_config=tuning_job_config(tuning),
            training_job_definition=tuning.definition.tuning_training_job(),
        )
    print(f"Console: {console_url(region, 'hyper-tuning-jobs/' + tuning.job_name)}", flush=True)
    if not tuning.wait:
        print_status_command("hyper-parameter-tuning-job", tuning.job_name, region)
        return 0
    seconds, why = tuning_wait_s(tuning)
    check = (
        "Look at it: aws sagemaker describe-hyper-parameter-tuning-job --region "
        f"{region} --hyper-parameter-tuning-job-name {tuning.job_name}"
    )

    def current() -> object:
        return job.refresh().hyper_parameter_tuning_job_status

    with reporting(f"Tuning job {tuning.job_name}"):
        with sdk_deadline(f"tuning job {tuning.job_name}", seconds, why, check, current):
            job.wait(timeout=int(seconds))
        job.refresh()
    return report_best(job, tuning, session)


def tuning_wait_s(tuning: TuningPlan) -> tuple[float, str]:
    """How long to wait for a tuning job: its training jobs in rounds of max_parallel_jobs,
    each within its own limit and the time SageMaker takes around it, and why."""
    rounds = -(-tuning.max_jobs // tuning.max_parallel_jobs)
    spec = tuning.definition.spec
    each = (tuning.definition.max_wait_s or spec.max_run_s) + START_AND_FINISH_S
    return (
        rounds * each + START_AND_FINISH_S,
        f"{rounds} rounds of {tuning.max_parallel_jobs} training jobs, each within its "
        f"--max-run of {spec.max_run_s} s and {START_AND_FINISH_S} s to start and finish",
    )


def tuning_job_config(tuning: TuningPlan) -> Any:
    """Search strategy, objective, limits and ranges: the tuning job's own part."""
    from sagemaker.core import shapes

    strategy_config = None
    if tuning.strategy == "Hyperband":
        strategy_config = shapes.HyperParameterTuningJobStrategyConfig(
            hyperband_strategy_config=shapes.HyperbandStrategyConfig(
                min_resource=1, max_resource=reported_epochs(tuning.definition.spec)
            )
        )
    return shapes.HyperParameterTuningJobConfig(
        strategy=tuning.strategy,
        strategy_config=strategy_config,
        hyper_parameter_tuning_job_objective=shapes.HyperParameterTuningJobObjective(
            type=tuning.direction, metric_name=tuning.objective
        ),
        resource_limits=shapes.ResourceLimits(
            max_number_of_training_jobs=tuning.max_jobs,
            max_parallel_training_jobs=tuning.max_parallel_jobs,
        ),
        parameter_ranges=parameter_ranges(tuning.ranges),
        training_job_early_stopping_type=tuning.early_stopping,
    )


def parameter_ranges(ranges: Mapping[str, TuningRange]) -> Any:
    """The ranges as SageMaker takes them: bounds and values as strings."""
    from sagemaker.core import shapes

    integer, continuous, categorical = [], [], []
    for name, r in ranges.items():
        if r.kind == "categorical":
            categorical.append(
                shapes.CategoricalParameterRange(name=name, values=[str(v) for v in r.values])
            )
            continue
        if r.low is None or r.high is None:
            raise ValueError(f"Tuning range {name} has no bounds: {r}")
        if r.kind == "integer":
            integer.append(
                shapes.IntegerParameterRange(
                    name=name,
                    min_value=str(int(r.low)),
                    max_value=str(int(r.high)),
                    scaling_type=r.scaling,
                )
            )
        else:
            continuous.append(
                shapes.ContinuousParameterRange(
                    name=name,
                    min_value=str(float(r.low)),
                    max_value=str(float(r.high)),
                    scaling_type=r.scaling,
                )
            )
    return shapes.ParameterRanges(
        integer_parameter_ranges=integer,
        continuous_parameter_ranges=continuous,
        categorical_parameter_ranges=categorical,
    )


def report_best(job: Any, tuning: TuningPlan, session: boto3.session.Session) -> int:
    from sagemaker.core.utils.utils import Unassigned

    from launch.common.aws import reporting

    status = job.hyper_parameter_tuning_job_status
    best = job.best_training_job
    if status != "Completed" or isinstance(best, Unassigned) or best is None:
        reason = job.failure_reason
        detail = "" if isinstance(reason, Unassigned) or not reason else f": {reason}"
        raise AwsError(
            f"Tuning job {tuning.job_name} ended {status} with no best training job{detail}"
        )
    objective = best.final_hyper_parameter_tuning_job_objective_metric
    print(f"Status: {status}")
    print(f"Best training job: {best.training_job_name}")
    if not isinstance(objective, Unassigned):
        print(f"  {objective.metric_name} = {objective.value:g}")
    print("Hyperparameters:")
    chosen = dict(tuning.definition.spec.hyperparameters) | dict(best.tuned_hyper_parameters or {})
    for key, value in sorted(chosen.items()):
        print(f"  {key} = {value}")
    sagemaker = session.client("sagemaker")
    with reporting(f"Describing the best training job {best.training_job_name}"):
        described = sagemaker.describe_training_job(TrainingJobName=best.training_job_name)
    print(f"Model artifact: {described['ModelArtifacts']['S3ModelArtifacts']}")
    return 0
