"""``python -m widerface_eval ...`` -> :func:`widerface_eval.cli.main`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
