"""Errors with messages meant for the reader (radiologist), not for a developer."""


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
