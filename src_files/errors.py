"""The one exception type whose message is meant for the user.

Library code raises ``UserError`` for bad input (a missing folder, a corrupt image, a checkpoint of another
model, ...). The top-level scripts catch it and print ``error: <message>`` as a single line and exit 1, so a
user never sees a traceback for a mistake they can fix. Messages name the problem, the path where there is
one, and what to do.
"""


class UserError(Exception):
    """An error caused by the user's input; its message is printed as one line by the scripts."""
