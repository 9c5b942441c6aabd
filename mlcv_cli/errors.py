"""User-facing failures: each says what was expected, what was found, and how to fix it.

The CLI turns an MlcvError into one line on stderr and its ``exit_code``; anything
else is a bug and shows a traceback.
"""


class MlcvError(Exception):
    """Base class of every failure a user can cause or fix."""

    exit_code = 1


class ConfigError(MlcvError):
    """A config file, override or command-line value is wrong."""

    exit_code = 2


class UsageError(MlcvError):
    """Command-line arguments do not fit together."""

    exit_code = 2


class DataError(MlcvError):
    """A dataset, archive, image or download is missing, corrupt or hostile."""


class BadNameError(DataError):
    """A dataset name given by the user cannot name a directory (a usage mistake)."""

    exit_code = 2


class ModelFileError(MlcvError):
    """A model file is not an mlcv model, is incompatible, or is damaged."""


class DivergenceError(MlcvError):
    """Training produced a NaN or infinite loss or weight."""

    def __init__(self, message, iteration=None, loss=None):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss


class TrainingInterrupted(MlcvError):
    """Training stopped on request (SIGINT/SIGTERM) after writing a checkpoint."""

    exit_code = 130
