"""Laptop-side launchers: run the smvision image on SageMaker with the SDK v3.

`python -m launch COMMAND --help` explains each command. The package imports only the
standard library and `smvision.schema.hyperparameters` / `smvision.core.metrics` until a command
has validated its arguments; the SageMaker SDK and boto3 are imported after that.
"""
