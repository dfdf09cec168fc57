"""``python -m retinaface_polynl`` runs the same command line as ``retinaface-polynl``."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
