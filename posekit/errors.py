"""The one user-facing error type.

Raise `PosekitError("photo.jpg: not an image; pass a JPEG or PNG")` anywhere; the CLI prints it as
one line on stderr (no traceback) and exits with its code: 2 for usage errors, 1 otherwise.
"""


class PosekitError(Exception):
    """An error the user can fix: one line that names the file or flag and what to do."""

    exit_code = 1
    same_everywhere = False  # raised alike by every process of a multi-process launch (printed once)

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PosekitError):
    """Bad flags or arguments (exit status 2)."""

    exit_code = 2
    same_everywhere = True


class ModelNotFoundError(PosekitError):
    """A model (hub id or path) could not be loaded; the message says what to download or pass."""

    same_everywhere = True


class NoPersonError(PosekitError):
    """The detector found nobody in a photo (the caller may know why: a photo too small)."""
