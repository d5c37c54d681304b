"""The one exception tree of riskgrade.

Every error a user can cause derives from :class:`RiskgradeError`; its message locates the problem
(file, line, column, key) so that an operator can fix the input without reading code.
"""

from __future__ import annotations


class RiskgradeError(Exception):
    """Root of all errors raised on purpose by riskgrade."""


class DataError(RiskgradeError):
    """Input data cannot be used as given (a whole file or column, not a single bad row)."""


class MissingInputError(DataError):
    """A required file or column is absent: the import stops and writes nothing."""


class PolicyError(RiskgradeError):
    """The policy file is invalid; the message names the offending key."""


class NoChampionError(RiskgradeError):
    """No model carries the ``champion`` alias in the registry."""


class BatchLockedError(RiskgradeError):
    """Another run holds the batch lock for this database."""


class OutputError(RiskgradeError):
    """An output file could not be written (disk full, no permission, its folder gone): nothing was left behind."""


class DatabaseError(RiskgradeError):
    """The database cannot be used: unreachable, missing (for a command that only reads), or busy past the wait."""


class UsageError(RiskgradeError):
    """An option's value cannot work (an output path that is a folder, a date far in the future): exit code 2."""


class DatabaseUrlError(UsageError, DatabaseError):
    """The database URL itself is malformed or names an unsupported database (a usage error)."""
