"""Comparing algorithms (and managed services) on the same images: rows in, a report out.

    from smvision.comparison.rows import Row, Qualities, scores_from_evaluation
    from smvision.comparison.report import write_report

    row = Row(name="svm", where="local", scores=scores_from_evaluation(evaluation_json),
              training_seconds=12.5, latency_p50_ms=1.8, ...)
    comparison = write_report(rows, out_dir, title=..., context=[...], measured={...})

`rows` holds the measurements (every field but the name may be None), `stats` the
intervals and the paired test, `report` the recommendation and comparison.md/.json,
`plots` the pictures. Standard library only (plots import matplotlib when they draw), so
launch/ can build the same report from SageMaker jobs; `smvision.local.compare` builds
rows from local jobs.
"""
