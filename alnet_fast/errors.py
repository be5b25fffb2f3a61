"""Typed errors raised by alnet_fast."""


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded: missing, corrupt, unsafe, or not matching the config."""


class BackendUnavailable(RuntimeError):
    """A requested backend is unknown or cannot run on the requested device; the message says why."""


class ImageReadError(ValueError):
    """A file exists but cannot be read as an image."""
