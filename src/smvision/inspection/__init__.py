"""The data report: what is wrong with a data set before a model learns from it.

`inspect(splits, class_names, settings)` looks at the images of train, validation and
test as the model sees them and returns a `DataReport`: duplicates within and across
splits (perceptual hashes and thumbnails, hashes.py and duplicates.py), label-issue candidates
(confident learning over out-of-fold probabilities, label_issues.py), image quality
(quality.py) and class balance. `DataReport.write` puts data_report.json and its pictures
in a folder. Every training job writes one (training.main), `python -m smvision.local
inspect` writes one alone, and `compare` shows its summary.
"""

from smvision.inspection.findings import DataReport, InspectedSplit, Settings, inspect

__all__ = ["DataReport", "InspectedSplit", "Settings", "inspect"]
