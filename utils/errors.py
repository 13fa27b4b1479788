"""The project's user errors: problems with the user's input, printed by ``utils.cli.main_guard`` as
one ``error: ...`` line with exit status 2. Every class is also a ValueError."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input; printed as one line, no traceback."""


class ConfigError(UserError, ValueError):
    """A configuration value or key is invalid."""


class ImageError(UserError, ValueError):
    """An input image is missing, unreadable or not an image."""


class CheckpointError(UserError, ValueError):
    """Any problem loading a checkpoint; the message is one line naming file, problem and fix."""


class DeviceError(UserError, ValueError):
    """The requested device is unknown or not available."""


class EditingError(UserError, ValueError):
    """Invalid editing request (unknown component, mismatched batches, ...)."""


class MetricError(UserError, ValueError):
    """A metric cannot be computed with the given inputs (shapes, missing model, ...)."""


class ComponentError(EditingError, MetricError):
    """An unknown component name: an invalid request for an edit and for a metric alike."""


class AlignError(UserError, ValueError):
    """A photo cannot be aligned for editing: no face, a face too small for the model, a photo too
    large, dlib missing (kinds in ``editing.align``)."""


class TrainingError(UserError):
    """Training diverged (a non-finite loss or weight) and stopped; the message names the last finite
    checkpoint and the fix."""
