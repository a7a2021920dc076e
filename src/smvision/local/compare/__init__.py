"""`python -m smvision.local compare`: every algorithm on the same images, measured, reported.

- `plan`: which algorithms run with which hyperparameters (pure; checked before any job);
- `jobs`: one training job per algorithm through `smvision.local train`, its wall time and
  peak memory;
- `serving`: what serving a trained model costs (the real `serve` to its first /ping 200,
  and in-process latency in a process of its own, `python -m smvision.local.compare.latency`);
- `progress`: the terminal display (rich), fed by the jobs' own log lines;
- `command`: the command itself; rows and the report come from `smvision.comparison`.
"""
