"""The one exception users see: a mistake in their input, said in one line."""


class LifelongError(ValueError):
    """A user-facing error: the message names the problem and, where possible, the fix.

    The command line prints it as one line (``error: ...``) and exits with status 2.
    """
