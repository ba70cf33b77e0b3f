"""Exceptions with messages that say what went wrong, where, and how to fix it."""


class HandwritingError(Exception):
    """Base class: the command line prints these as one line and exits non-zero."""


class DataError(HandwritingError, ValueError):
    """Bad input data: the message names the file (and line/sample/field) and the fix."""


class OutputError(HandwritingError, OSError):
    """An output file could not be written: the message names the path and the fix."""


class ArgumentError(DataError):
    """A bad argument (of a function or a command): the message names it, its value and what is allowed.
    A DataError, as such errors were before it existed."""
