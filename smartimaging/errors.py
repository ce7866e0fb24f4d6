"""Errors with messages meant for the reader (radiologist), not for a developer."""

import errno

# OSErrors of a full, read-only or forbidden disk, in the words the CLI and the worker print (exit 2, not a bug)
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the disk is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EFBIG: "the file is too large for the disk"}


class SmartImagingError(Exception):
    """Base class: the message is shown to the user as is; the CLI exits with code 2."""


class InputError(SmartImagingError):
    """The input images or masks cannot be used (corrupt, wrong modality, wrong shape, NaNs, geometry...)."""


class ModelError(SmartImagingError):
    """Model weights are missing, tampered with, or do not match their model card."""


class CancelledError(BaseException):
    """The user cancelled a long-running job.

    Like KeyboardInterrupt it derives from BaseException, so that the broad `except Exception` handlers of libraries
    (pyradiomics computes every feature class inside one) cannot swallow it; the CLI and the worker exit with code 2.
    """
