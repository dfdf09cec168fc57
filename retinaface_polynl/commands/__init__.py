"""Sub-commands of the ``retinaface-polynl`` command line, one module each."""
