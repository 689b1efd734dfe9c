"""The shapes of messages sent to browsers over websockets (and the events API)."""

from typing import Literal, NotRequired, TypedDict


class JobSnapshot(TypedDict):
    id: int
    kind: str
    state: str
    progress: float
    progress_message: str
    eta_seconds: float | None
    error: dict | None
    result_ready: bool


class ProgressPayload(TypedDict):
    done: int
    total: int
    fraction: float
    eta_seconds: float | None
    message: str


class StatePayload(TypedDict):
    state: str
    error: NotRequired[dict | None]


class LogPayload(TypedDict):
    level: Literal["info", "warning", "error"]
    message: str


class EventMessage(TypedDict):
    """What a websocket client receives for each event."""

    type: Literal["event"]
    seq: int | None  # None for progress ticks, which are not stored
    kind: str
    payload: dict
    at: str


class MetricPayload(TypedDict):
    """One logged training step, as charts draw it. Missing values are null."""

    step: int
    max_steps: int | None
    epoch: float | None
    loss: float | None
    eval_loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    tokens_per_second: float | None
    token_accuracy: float | None
    gpu_memory_mb: float | None
    process_memory_mb: float | None  # CPU runs: the worker's resident memory
    # Preference runs only (DPO and its kin): the implicit rewards of the chosen and rejected answers, their
    # margin, and the share of pairs where the chosen one scores higher (KTO: none); training batch, and
    # the latest validation.
    reward_chosen: NotRequired[float | None]
    reward_rejected: NotRequired[float | None]
    reward_margin: NotRequired[float | None]
    preference_accuracy: NotRequired[float | None]
    eval_preference_accuracy: NotRequired[float | None]
    eval_reward_margin: NotRequired[float | None]
    # GRPO runs only: the answers' mean reward, the share of right ones, their mean length in tokens, the
    # KL from the start and the share of questions with nothing to learn; training batch, latest validation.
    reward: NotRequired[float | None]
    right_answers: NotRequired[float | None]
    answer_tokens: NotRequired[float | None]
    kl: NotRequired[float | None]
    nothing_to_learn: NotRequired[float | None]  # questions whose answers all scored the same
    eval_right_answers: NotRequired[float | None]
    eval_reward: NotRequired[float | None]
