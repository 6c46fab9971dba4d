"""The one exception type for problems a user can cause (bad files, keys, shapes, values).

The CLI prints its message on one line and exits with code 2. Messages name the file and the key or
row, what was found and what was expected.
"""


class UwavError(Exception):
    """A user-caused error; str(err) is a single line suitable for the terminal."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
