"""What can go wrong in training, each with a plain message and what to do about it.

Every error carries ``message`` (what happened) and ``hint`` (what to try), both
written for the person who pressed *Train*, not for a programmer; the job
runner shows them as they are.
"""

from __future__ import annotations

from typing import Any


class TrainingError(Exception):
    """``remedies``: recipe changes worth retrying with (field -> value), empty when none apply."""

    def __init__(self, message: str, hint: str = "", *, remedies: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.remedies = dict(remedies or {})

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for a job's error field or an event."""
        return {
            "kind": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "remedies": self.remedies,
        }


class TrainingModelMissing(TrainingError):
    """The base model folder is absent or holds no model."""


class TrainingDataError(TrainingError):
    """Nothing trainable is left in the data (or a file is missing or unreadable)."""


class TrainingNotRunnable(TrainingError):
    """The recipe asks for something this machine can't do (QLoRA without a GPU...)."""


class TrainingDiverged(TrainingError):
    """The loss became NaN/infinite or kept rising: the run was stopped."""

    def __init__(
        self, message: str, hint: str = "", *, remedies: dict[str, Any] | None = None, step: int | None = None
    ) -> None:
        super().__init__(message, hint, remedies=remedies)
        self.step = step

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "step": self.step}


class TrainingOutOfMemory(TrainingError):
    """The GPU ran out of memory; ``remedies`` shorten sequences, checkpoint and shrink the batch."""


class TrainingProcessLost(TrainingError):
    """A process of a run on several processes died without explaining why (killed, crashed): every
    other one was ended; the run can go on from its last checkpoint."""
