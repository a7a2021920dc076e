"""Drift monitoring for image models: the baseline `train` writes, and the `monitor` job.

SageMaker's built-in Model Monitor reads tabular data only; this package is the custom
monitoring container's code, in the same image. `train` writes model/baseline.json
(`baseline`): statistics of the training images (`features`), the class priors, and the
model's confidence and predicted classes on validation. `monitor` (`main`) reads what an
endpoint's data capture recorded (`capture`), measures the captured images the same way,
compares each statistic with the baseline by a named test (`drift`) and writes a report,
its plots and Model Monitor's constraint_violations.json (`report`, `plots`).
"""

from __future__ import annotations
