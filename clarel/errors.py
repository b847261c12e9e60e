"""The exception hierarchy of the `clarel` library.

Every error a user can cause (bad data, bad config, missing weights) is a `ClarelError` with a
message that names the bad value or file and says how to fix it.
"""

from __future__ import annotations


class ClarelError(Exception):
    """Base class of every error raised on purpose by `clarel`."""


class DatasetError(ClarelError):
    """A dataset folder is missing, incomplete or inconsistent (message names the file)."""


class ConfigError(ClarelError):
    """A run configuration or an override is malformed (message lists the valid options)."""


class WeightsUnavailableError(ClarelError):
    """Pretrained weights are not on disk and cannot be downloaded (message says what to fetch)."""


class NonFiniteLossError(ClarelError):
    """Training produced a NaN or infinite loss (message gives the step and the loss terms)."""


class TrainingInterrupted(ClarelError):
    """Training stopped on request (cancel or SIGTERM) after saving a resumable checkpoint."""
