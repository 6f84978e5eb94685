"""Errors that name the problem and the fix.

Every error the toolkit raises on purpose derives from :class:`LandscapeError`;
the command line prints its message as one line and exits with its ``exit_code``
instead of a traceback. Bad arguments are also ``ValueError`` so that plain
Python callers can catch them the usual way.
"""


class LandscapeError(Exception):
    """Base class: a message meant for the user, and the exit code of the CLI."""

    exit_code = 2


class InputError(LandscapeError, ValueError):
    """An argument or input that cannot be used as given (shape, range, value)."""


class NotSymmetricError(InputError):
    """A matrix or operator that should be symmetric is not."""


class NonFiniteError(LandscapeError, ArithmeticError):
    """A loss, gradient, Hessian-vector product or parameter is NaN or infinite."""

    exit_code = 3


class FileFormatError(LandscapeError, OSError):
    """A run or results file is missing, unreadable, from another schema or incomplete."""


class CheckpointCorruptError(FileFormatError):
    """Stored data failed its checksum or could not be read back."""

    exit_code = 4


class UnsafeFileError(FileFormatError):
    """An HDF5 file uses external links, external storage, virtual datasets or plugins."""


class ConfigMismatchError(LandscapeError):
    """A file belongs to another run or configuration than the one asked for."""


class OutputExistsError(LandscapeError, FileExistsError):
    """An output that already exists would be overwritten."""
