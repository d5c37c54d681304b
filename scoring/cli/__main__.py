"""``python -m scoring.cli``: the same program as the ``riskgrade`` command."""

from scoring.cli import main

main()
