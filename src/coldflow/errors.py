"""The base of errors whose message already tells the user what went wrong and the fix.

The command line prints such errors as one line instead of a traceback.
"""


class UserError(Exception):
    """An error about the user's input, files or environment, with an actionable message."""
