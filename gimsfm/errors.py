"""User-facing errors: the CLI prints them as one line and exits non-zero."""


class GimsfmError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""

    exit_code = 1


class InputError(GimsfmError):
    """Missing, empty, unreadable or malformed input."""

    exit_code = 2


class OutputExistsError(GimsfmError):
    """The output already holds results and --overwrite was not given."""

    exit_code = 3


class ReconstructionError(GimsfmError):
    """The pipeline ran but could not produce a valid result (e.g. nothing matches)."""

    exit_code = 4
