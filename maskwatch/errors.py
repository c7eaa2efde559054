"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class MaskwatchError(Exception):
    """A user-facing error: bad input, missing model, unreachable source.

    The message must be one line, say what went wrong and, where it helps, what to do.
    It must never contain a URL password (use ``maskwatch.sources.redact_url``).
    """

    exit_code = 2
