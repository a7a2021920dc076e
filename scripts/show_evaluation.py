"""Print what a training job did and the evaluation it wrote (`make demo`, step 2).

    .venv/bin/python -m scripts.show_evaluation JOBDIR [LOG]

LOG, the job's whole output, gives the lines a person reads first: smvision's own log
lines (what was loaded, how long training took, where the model went) and the metric
lines SageMaker reads. The rest of it (the training toolkit's environment dump,
TensorFlow's notices) stays in the file: on SageMaker it goes to CloudWatch, where it
helps; at the top of a terminal it buries the results.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from smvision.core.metrics import METRIC_NAMES

# smvision.core.logs' format: "2026-01-31 12:00:00,000 INFO smvision.training.main: message".
OWN_LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) smvision[\w.]*: (?P<message>.*)$")


def is_metric(line: str) -> bool:
    name, equals, _ = line.partition("=")
    return bool(equals) and name in METRIC_NAMES


def own_lines(lines: Iterable[str]) -> Iterator[str]:
    """smvision's log messages (level shown unless INFO) and its metric lines, those of
    one split in a row joined into one line."""
    metrics: list[str] = []
    for line in lines:
        line = line.rstrip()
        if metrics and not (is_metric(line) and split_of(line) == split_of(metrics[0])):
            yield " ".join(metrics)
            metrics = []
        if is_metric(line):
            metrics.append(line)
            continue
        own = OWN_LOG_LINE.match(line)
        if own:
            level = own["level"]
            yield own["message"] if level == "INFO" else f"{level}: {own['message']}"
    if metrics:
        yield " ".join(metrics)


def split_of(metric_line: str) -> str:
    return metric_line.partition(":")[0]


def show_log(log: Path) -> None:
    print(f"\nTraining, as SageMaker runs it (its whole output is in {log}):")
    for line in own_lines(log.read_text(errors="replace").splitlines()):
        print(f"  {line}")


def show_evaluation(ml: Path) -> None:
    results = json.loads((ml / "output" / "data" / "evaluation.json").read_text())
    metadata = json.loads((ml / "model" / "metadata.json").read_text())
    print(
        f"\n{metadata['algorithm']} on {metadata['train_images']} images, "
        f"classes {', '.join(metadata['class_names'])}"
    )
    for split in ("validation", "test"):
        if split not in results:
            continue
        result = results[split]
        print(
            f"\n{split}: accuracy {result['accuracy']:.4f}, macro F1 {result['macro_f1']:.4f}, "
            f"log loss {result['loss']:.4f} over {result['count']} images"
        )
        if "f1_micro" in result:
            print(
                f"  multi-label: micro F1 {result['f1_micro']:.4f}, Hamming loss "
                f"{result['hamming_loss']:.4f}, subset accuracy {result['subset_accuracy']:.4f}"
            )
        if result.get("auc") is not None:
            print(
                f"  positive class {result['positive_class']}: precision "
                f"{result['precision']:.4f}, recall {result['recall']:.4f}, F1 "
                f"{result['f1']:.4f}, ROC AUC {result['auc']:.4f}, PR AUC {result['pr_auc']:.4f}"
            )
        print(f"  {'class':>10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}")
        for name, scores in result["per_class"].items():
            print(
                f"  {name:>10} {scores['precision']:9.3f} {scores['recall']:7.3f} "
                f"{scores['f1']:6.3f} {scores['support']:7d}"
            )
        if "label_confusion" in result:
            wrong = [p for p in result["predictions"] if p["labels"] != p["predicted"]]
            for p in wrong[:5]:
                print(f"  wrong: {p['source']} has {p['labels']}, predicted {p['predicted']}")
            continue
        wrong = [p for p in result["predictions"] if p["label"] != p["predicted"]]
        for p in wrong[:5]:
            print(
                f"  wrong: {p['source']} is {p['label']}, predicted {p['predicted']} "
                f"({p['probability']:.2f})"
            )
    show_findings(results)


def show_findings(results: dict[str, Any]) -> None:
    """Cross-validation and feature importance, when the job has them."""
    cv = results.get("cross_validation")
    if cv:
        print(
            f"\n{cv['folds']}-fold cross-validation on {cv['images']} images: accuracy "
            f"{cv['accuracy']['mean']:.4f} +/- {cv['accuracy']['std']:.4f}, macro F1 "
            f"{cv['macro_f1']['mean']:.4f} +/- {cv['macro_f1']['std']:.4f}"
        )
    importance = results.get("feature_importance")
    if importance:
        shares = ", ".join(f"{kind} {share:.0%}" for kind, share in importance["by_kind"].items())
        print(f"\nFeature importance by kind: {shares}; the top three:")
        for top in importance["top"][:3]:
            print(f"  {top['importance']:.4f} {top['name']}")


def main(job_dir: Path, log: Path | None) -> None:
    if log is not None:
        show_log(log)
    show_evaluation(job_dir / "opt" / "ml")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else None)
