"""The one exception type for problems a user can cause (bad files, keys, shapes, values).

The CLI prints its message on one line and exits with code 2. Messages name the file and the key or
row, what was found and what was expected.
"""


class UwavError(Exception):
    """A user-caused error; str(err) is a single line suitable for the terminal."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class Interrupted(BaseException):
    """SIGTERM (or SIGINT) turned into an exception by the CLI, so that cleanup code runs as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def describe_os_error(err: OSError) -> str:
    """`<path>: <what the OS said>` for any OSError, with the path that is in the way where one is."""
    import errno
    import os

    what = err.strerror or str(err) or type(err).__name__
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    if err.errno == errno.ENOTDIR and err.filename is not None:
        probe = os.path.dirname(os.path.abspath(str(err.filename)))
        while probe and not os.path.exists(probe) and os.path.dirname(probe) != probe:
            probe = os.path.dirname(probe)
        if os.path.exists(probe) and not os.path.isdir(probe):
            what += f" ({probe} is a file)"
    elif err.errno == errno.EEXIST:
        what += " (a file is where a folder is needed, or the reverse)"
    elif err.errno == errno.ENOSPC:
        what += " (free some space and run again)"
    return f"{' -> '.join(paths)}: {what}" if paths else what
