"""Print the evaluation a training job wrote: python scripts/show_evaluation.py JOBDIR."""

import json
import sys
from pathlib import Path


def main(job_dir: Path) -> None:
    ml = job_dir / "opt" / "ml"
    results = json.loads((ml / "output" / "data" / "evaluation.json").read_text())
    metadata = json.loads((ml / "model" / "metadata.json").read_text())
    print(
        f"\n{metadata['algorithm']} on {metadata['train_images']} images, "
        f"classes {', '.join(metadata['class_names'])}"
    )
    for split, result in results.items():
        print(
            f"\n{split}: accuracy {result['accuracy']:.4f}, macro F1 {result['macro_f1']:.4f}, "
            f"log loss {result['loss']:.4f} over {result['count']} images"
        )
        print(f"  {'class':>10} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}")
        for name, scores in result["per_class"].items():
            print(
                f"  {name:>10} {scores['precision']:9.3f} {scores['recall']:7.3f} "
                f"{scores['f1']:6.3f} {scores['support']:7d}"
            )
        wrong = [p for p in result["predictions"] if p["label"] != p["predicted"]]
        for p in wrong[:5]:
            print(
                f"  wrong: {p['source']} is {p['label']}, predicted {p['predicted']} "
                f"({p['probability']:.2f})"
            )
    print(f"\nModel: {ml / 'model'}; plots: {ml / 'output' / 'data'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
