"""The user script the sagemaker-training toolkit runs: `python train.py --name value ...`."""

from smvision.training.main import main

if __name__ == "__main__":
    raise SystemExit(main())
