"""The one exception type the command line turns into a one-line message and a non-zero exit."""


class InputError(ValueError):
    """Bad input from the user: a missing file, a mismatched grid, a corrupt model.

    The message is a single line that names the problem; the command line prints it as
    ``mdtexture: error: <message>`` and exits with status 2.
    """
