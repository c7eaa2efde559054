"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class MaskwatchError(Exception):
    """A user-facing error: bad input, missing model, unreachable source.

    The message must be one line, say what went wrong and, where it helps, what to do.
    It must never contain a password: build it from ``SourceSpec.name`` or pass text through
    ``maskwatch.sources.spec.redact`` (URL passwords, secret query values, any parsed password).
    """

    exit_code = 2
