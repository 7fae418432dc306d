"""``python -m tangentlab``: the command line (see :mod:`tangentlab.cli`)."""

from tangentlab.cli import main

main()
