"""Errors a user can act on. Front ends show ``str(error)`` as a single line."""


class UserError(Exception):
    """Bad input or an impossible request: the message names the file, line or field at fault."""


def not_a_file(path: object, what: str = "") -> UserError:
    """The error for a path that should be a readable file: missing, or a folder."""
    import os

    label = f"{what} {path}" if what else str(path)
    if os.path.isdir(str(path)):
        return UserError(f"{label}: is a folder, expected a file")
    return UserError(f"{label}: no such file")
