"""What a batch job tells its operator when it cannot go on."""


class BatchError(Exception):
    """A job that cannot start or continue: bad input, a stale checkpoint, a refused request.

    The message is one line for the terminal; no traceback is shown for it.
    """
