"""`python -m cod_lite.train ...`: the same command as `codlite train ...` (cli/train.py)."""

import sys

from cod_lite_cli.train import main

if __name__ == "__main__":
    sys.exit(main())
