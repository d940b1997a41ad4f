"""Errors a user can act on. Front ends show ``str(error)`` as a single line."""


class UserError(Exception):
    """Bad input or an impossible request: the message names the file, line or field at fault."""
