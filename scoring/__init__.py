"""riskgrade's scoring side: from calibrated probabilities to tiers, supervision and plans, and the interfaces.

- ``domain/``   the policy domain (pure): policy file, tiers, supervision limits, planning, monitoring, simulate
- ``results/``  the stored results and their queries: nightly batch, tables, lock, ranked list, explanations
- ``cli/``      the ``riskgrade`` command line            (interfaces: thin, they call ``results`` and ``domain``)
- ``exports.py`` CSV / JSON / xlsx writers
- ``report.py`` the HTML monitoring report
"""
