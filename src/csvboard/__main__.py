"""``python -m csvboard`` is the ``csvboard`` command."""

from csvboard.cli import main

main()
