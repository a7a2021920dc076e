"""`python -m smvision.local`: the local commands (smvision.local.cli)."""

from smvision.local.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
