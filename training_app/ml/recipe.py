"""The training recipe: every setting of a fine-tuning run, with the guide's defaults.

A :class:`Recipe` is immutable and validated when it is made, so a job that holds
one can always run it (as far as the settings go). ``to_dict``/``from_dict`` are
for the database and the form, ``to_yaml``/``from_yaml`` for exporting a run so
it can be reproduced. YAML comes from users, so :func:`load_plain_yaml` reads it
without anchors, aliases or deep nesting (a few hundred bytes of aliases expand to
gigabytes), and every setting but ``target_modules`` must be one plain value.
Defaults follow the LoRA recipe of the seed guide (r=64, alpha=16, dropout 0.1
on q/k/v/o, learning rate 2e-4, 3 epochs, batch 1 with accumulation 8, 2,048 tokens).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from models_app.presets import (  # noqa: F401
    ADAPTER_METHOD_NAMES,
    ADAPTER_METHODS,
    ATTENTION_MODULES,
    LORA_TARGET_PRESETS,
    MLP_MODULES,
)
from training_app.ml.errors import TrainingNotRunnable
from training_app.ml.rehearsal import MAX_SHARE

METHODS = ADAPTER_METHODS
CHECKPOINTING_CHOICES = ("auto", "on", "off")
PRECISION_CHOICES = ("auto", "bf16", "fp16", "fp32")
REPORT_TO_CHOICES = ("none", "mlflow", "wandb")
GPUS_CHOICES = ("auto", "1", "2", "4", "8")
SPEEDUP_CHOICES = ("auto", "on", "off")  # auto: on a GPU only
# What the run learns from: supervised (conversations), preferences (a better and a worse answer), or
# rewards for its own answers (GRPO: the model answers each question several times, and the answers that
# carry the reference's facts are reinforced).
OBJECTIVES = ("sft", "dpo", "orpo", "simpo", "kto", "grpo")
PREFERENCE_OBJECTIVES = ("dpo", "orpo", "simpo", "kto")
# Those that learn from pairs; KTO learns from answers rated good or bad (a pair gives one of each).
PAIRED_OBJECTIVES = ("dpo", "orpo", "simpo")
# Those that measure the model against a frozen reference (the starting point): the others need none.
REFERENCE_OBJECTIVES = ("dpo", "kto")
# Those that continue from an adapter the user picks (a supervised one of the same base model).
ADAPTER_START_OBJECTIVES = (*PREFERENCE_OBJECTIVES, "grpo")
OBJECTIVE_NAMES = {
    "sft": "supervised",
    "dpo": "DPO",
    "orpo": "ORPO",
    "simpo": "SimPO",
    "kto": "KTO",
    "grpo": "GRPO",
}
# GRPO's rewards (training_app/ml/rewards.py): the answer carries the reference's facts, or is it exactly.
REWARDS = ("facts", "exact")
# trl's DPO losses offered: the paper's, IPO (no overfitting), hinge (SLiC), robust (noisy labels).
PREFERENCE_LOSSES = ("sigmoid", "ipo", "hinge", "robust")

# The module names live with the model presets (one source of truth).
TARGET_PRESETS = LORA_TARGET_PRESETS
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")

# Shown next to each field in the form, and as comments in the YAML export.
RECIPE_HELP: dict[str, str] = {
    "objective": "What the model learns from: 'sft' imitates the answers of conversations (supervised); "
    "'dpo' learns from pairs of a better and a worse answer to prefer the better (Direct Preference "
    "Optimization), best on top of a supervised adapter; 'orpo' learns the better answers and the "
    "preference in one run, from the base model, with no reference copy (less memory); 'simpo' is DPO "
    "without a reference, judging answers by their average per word (less memory, no length bias); "
    "'kto' learns from answers rated good or bad one by one (pairs work too); 'grpo' lets the model answer "
    "each question several times and reinforces the answers that are right (they carry the reference "
    "answer's facts), best on top of a supervised adapter, for questions with a clear right answer.",
    "method": "How the model is adapted: LoRA trains small extra matrices (the usual choice); "
    "QLoRA does the same on a 4-bit copy of the model to fit a smaller GPU; IA3 trains even fewer numbers.",
    "lora_r": "Size of the LoRA matrices. Larger learns more but can memorise the examples; "
    "8 to 64 is usual.",
    "lora_alpha": "How strongly the LoRA matrices act on the model; the effect scales with "
    "alpha divided by r.",
    "lora_dropout": "Share of the LoRA signal randomly switched off while training, against memorising "
    "(0.1 = 10%).",
    "target_modules": "Which parts of the model get LoRA matrices: 'attention' (q/k/v/o, "
    "the guide's choice), 'all_linear' (attention and feed-forward, learns more), "
    "or names separated by commas.",
    "use_rslora": "Rank-stabilised LoRA: keeps large ranks (r) from training too weakly.",
    "use_dora": "DoRA: splits each weight into size and direction; sometimes better, slower to train.",
    "learning_rate": "How big each learning step is. Too high and the loss jumps around or rises; "
    "lower it to 1e-5 to 5e-5 if training does not settle.",
    "num_epochs": "How many times the whole training set is gone through.",
    "batch_size": "Conversations processed together on the GPU. Lower it to 1 if memory runs out.",
    "grad_accum": "Batches added up before each learning step; batch size times this is the effective batch.",
    "max_seq_len": "Longest conversation in tokens; longer ones are cut. Lower it if memory runs out.",
    "warmup_ratio": "Share of the run during which the learning rate climbs from zero, "
    "which steadies the start (0.1 = first 10%).",
    "gradient_checkpointing": "Saves GPU memory by recomputing work instead of storing it, "
    "at about a quarter more time. 'auto' turns it on only when the memory estimate says it is needed.",
    "precision": "Number format for training. 'auto' picks bf16 where the hardware computes it natively "
    "(recent GPUs, CPUs with AVX512-BF16 or AMX), fp16 on older GPUs and fp32 on other CPUs.",
    "gpus": "How many GPUs of one machine the run uses. 'auto' takes as few as the model needs: one if it "
    "fits, else enough to split the model across them. More GPUs than needed each hold a copy and share the "
    "batch, which is faster. On a machine without GPUs, more than 1 runs that many processes on the CPU.",
    "micro_batching": "Speed: the conversations of one learning step go through the GPU together, as many "
    "as its memory holds, with conversations of similar length side by side (less padding). The same "
    "conversations make each step, so it learns the same. 'auto': on GPUs; 'off': one batch at a time.",
    "liger_kernels": "Speed and memory: Liger's fused GPU kernels (the loss computed without the full "
    "table of word scores, fused normalisation and activations). 'auto': on GPUs where they are installed.",
    "fused_optimizer": "Speed: the optimizer updates every weight in one GPU kernel instead of one per "
    "weight; the same arithmetic. 'auto': on GPUs.",
    "eval_steps": "Every how many steps the validation loss is measured and sample answers are written "
    "(empty: about 12 times per run, whatever its length).",
    "save_steps": "Every how many steps a checkpoint is saved, to resume from or to use "
    "(empty: at every evaluation, so the best one can be kept).",
    "early_stopping_patience": "Stop when the validation loss has not improved for this many evaluations "
    "in a row: the model has stopped learning what carries over to new questions (0: never stop early).",
    "keep_best": "Keep the checkpoint with the lowest validation loss as the adapter, "
    "not simply the last one.",
    "logging_steps": "Every how many steps the loss is reported. 1 gives the live charts every step "
    "at a negligible cost.",
    "seed": "Starting number for everything random, so the same recipe on the same data trains the same way.",
    "max_steps": "Stop after this many learning steps whatever the epochs say (empty: no limit). "
    "A trial run sets it.",
    "trial_rows": "Train on only the first N conversations (empty: all). The guide suggests a trial with 100 "
    "before a full run.",
    "reward": "GRPO: when an answer counts as right. 'facts': it carries the reference answer's facts "
    "(its numbers and most of its key words; a short reference must appear in it), whatever the wording; "
    "'exact': it is the reference answer itself, ignoring case, spaces and punctuation (labels, codes, "
    "numbers). Wrong answers get partial credit for the key words they share with the reference.",
    "generations": "GRPO: how many answers the model writes to each question; they are compared with each "
    "other, so the better ones are reinforced. More gives a steadier signal and costs time (4 to 16). "
    "Batch size times accumulation must be a multiple of it.",
    "max_answer_tokens": "GRPO: the longest answer the model may write while training, in tokens; an "
    "answer cut off here is scored as written. Keep it a little above your reference answers' length.",
    "beta": "DPO and KTO: how far the model may move from where it started; small (0.01-0.1) lets "
    "preferences change it a lot, large (0.5-1) keeps it close. ORPO: the weight of the preference "
    "against learning the better answers (0.1). SimPO: how sharply it separates the answers (2 to 2.5). "
    "GRPO: how strongly the model is held near where it started (0.1; 0: not at all, faster).",
    "preference_loss": "DPO's loss: 'sigmoid' is the paper's; 'ipo' does not keep pushing pairs it "
    "already gets right (less overfitting on small sets); 'hinge' stops at a fixed margin; 'robust' expects "
    "some pairs to be labelled the wrong way round.",
    "simpo_gamma": "SimPO: by how much the better answer must outscore the worse one (a margin; 0.5 "
    "to 1.5, about half of beta).",
    "precompute_reference": "DPO and KTO compare the model with its starting point (the reference). On: the "
    "reference's scores are computed once for every pair before training, so training needs less memory; "
    "off: computed at each step, no pass over the data at the start.",
    "rehearsal": "Keep general skills: how many of the base model's own answers to general questions "
    "(writing, explaining, arithmetic, formats...) join the training per conversation of yours, so it "
    "does not forget what it knew while learning your topic (0.25: one for every four; 0: none; at most "
    "100 in all). Worth it when an evaluation says the model forgot general skills. Supervised runs only.",
    "report_to": "Also send the metrics to an experiment tracker: 'none', 'mlflow' or 'wandb' "
    "(it must be installed and configured on the worker).",
}


MAX_YAML_DEPTH = 16


class _PlainYamlLoader(yaml.SafeLoader):
    """YAML's safe subset without anchors (&name) and aliases (*name), nested at most MAX_YAML_DEPTH deep."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(
                problem="uses an anchor (&name) or an alias (*name), which Lathe does not read: "
                "write each value out in full",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.MarkedYAMLError(
                    problem=f"is nested more than {MAX_YAML_DEPTH} levels deep", problem_mark=event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_plain_yaml(text: str) -> Any:
    """Parse untrusted YAML, refusing anchors, aliases and deep nesting. Raises ``ValueError`` in words."""
    loader = None
    try:
        loader = _PlainYamlLoader(text)  # checks the characters already
        return loader.get_single_data()
    except yaml.YAMLError as error:
        raise ValueError(f"the file is not a plain YAML recipe ({_brief(error)}).") from None
    except (ValueError, OverflowError, RecursionError) as error:  # e.g. an integer of 5,000 digits
        raise ValueError(f"the file holds a value Lathe can't read ({_brief(error)}).") from None
    finally:
        if loader is not None:
            loader.dispose()


def _brief(error: BaseException) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None)
    if mark is not None and problem:
        return f"line {mark.line + 1}: {' '.join(problem.split())[:300]}"
    return " ".join(str(error).split())[:300]


def _shown(value: Any) -> str:
    """A value as it is quoted in an error message: short, whatever it is."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


class RecipeError(ValueError):
    """One or more settings are invalid. ``errors`` maps each field to a plain message."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


@dataclass(frozen=True)
class Recipe:
    objective: str = "sft"
    method: str = "lora"
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: str = "attention"
    use_rslora: bool = False
    use_dora: bool = False
    learning_rate: float = 2e-4
    num_epochs: float = 3
    batch_size: int = 1
    grad_accum: int = 8
    max_seq_len: int = 2048
    warmup_ratio: float = 0.1
    gradient_checkpointing: str = "auto"
    precision: str = "auto"
    gpus: str = "auto"
    micro_batching: str = "auto"
    liger_kernels: str = "auto"
    fused_optimizer: str = "auto"
    eval_steps: int | None = None  # None: evaluation_cadence() of the run's length
    save_steps: int | None = None  # None: at every evaluation
    early_stopping_patience: int = 0
    keep_best: bool = True
    logging_steps: int = 1
    seed: int = 42
    max_steps: int | None = None
    trial_rows: int | None = None
    beta: float = 0.1
    preference_loss: str = "sigmoid"
    simpo_gamma: float = 1.0
    precompute_reference: bool = False
    rehearsal: float = 0.0
    reward: str = "facts"
    generations: int = 4
    max_answer_tokens: int = 256
    report_to: str = "none"

    def __post_init__(self) -> None:
        errors: dict[str, str] = {}
        for field in dataclasses.fields(self):
            check = _CHECKS[field.name]
            value = getattr(self, field.name)
            if isinstance(value, list | tuple | dict | set) and field.name not in _LIST_FIELDS:
                errors[field.name] = "must be one value (a number, a word or true/false), not a list."
                continue
            try:
                object.__setattr__(self, field.name, check(getattr(self, field.name)))
            except ValueError as error:
                errors[field.name] = str(error)
        if not errors and self.method == "ia3" and (self.use_dora or self.use_rslora):
            errors["method"] = "DoRA and rsLoRA are LoRA options; switch them off to use IA3."
        if not errors and self.rehearsal and self.objective != "sft":
            errors["rehearsal"] = (
                f"mixes conversations into supervised runs only; set it to 0 for {self.objective_name} "
                "(or use it in the supervised run before)."
            )
        if not errors and self.objective == "grpo" and self.effective_batch_size % self.generations:
            errors["generations"] = (
                f"must divide batch size times accumulation ({self.effective_batch_size}): each learning "
                "step takes whole groups of answers to the same question. Change one of them."
            )
        if errors:
            raise RecipeError(errors)

    # --- conversions --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Build from stored or submitted values; missing keys take the defaults."""
        if not isinstance(data, dict):
            raise RecipeError({"recipe": "expected a set of named settings (a mapping)."})
        unknown = sorted(set(data) - set(_CHECKS))
        if unknown:
            raise RecipeError({name: "is not a setting Lathe knows." for name in unknown})
        return cls(**data)

    def to_yaml(self) -> str:
        """YAML with each setting's explanation as a comment above it."""
        lines = ["# Lathe training recipe. Load it back with Recipe.from_yaml()."]
        for name, value in self.to_dict().items():
            lines.append(f"# {RECIPE_HELP[name]}")
            lines.append(yaml.safe_dump({name: value}, sort_keys=False, allow_unicode=True).rstrip("\n"))
        return "\n".join(lines) + "\n"

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        try:
            data = load_plain_yaml(text)
        except ValueError as error:
            raise RecipeError({"recipe": str(error)}) from None
        return cls.from_dict(data or {})

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some settings changed (validated again), e.g. an out-of-memory remedy."""
        return Recipe.from_dict({**self.to_dict(), **changes})

    # --- what the settings mean on a given machine ---------------------------
    @property
    def target_module_list(self) -> list[str]:
        preset = TARGET_PRESETS.get(self.target_modules)
        return list(preset) if preset else self.target_modules.split(",")

    @property
    def preference(self) -> bool:
        """Whether the run learns from preferences (DPO and its kin) rather than from conversations."""
        return self.objective in PREFERENCE_OBJECTIVES

    @property
    def paired(self) -> bool:
        """Whether the run learns from pairs of a better and a worse answer (not KTO's rated answers)."""
        return self.objective in PAIRED_OBJECTIVES

    @property
    def needs_reference(self) -> bool:
        """Whether the run keeps a frozen copy of its starting point to measure its moves against."""
        return self.objective in REFERENCE_OBJECTIVES

    @property
    def reinforced(self) -> bool:
        """Whether the run learns from rewards for its own answers (GRPO) rather than from given ones."""
        return self.objective == "grpo"

    @property
    def objective_name(self) -> str:
        return OBJECTIVE_NAMES[self.objective]

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.grad_accum

    def total_steps(self, train_rows: int) -> int:
        """Optimizer steps of a run on ``train_rows`` conversations (as the trainer counts them): a GRPO
        step takes ``generations`` answers to each of its questions."""
        if self.max_steps:
            return self.max_steps
        if self.reinforced:
            train_rows *= self.generations
        batches = math.ceil(max(1, train_rows) / self.batch_size)
        per_epoch = max(1, math.ceil(batches / self.grad_accum))
        return max(1, math.ceil(per_epoch * self.num_epochs))

    def cadence_problem(self) -> str | None:
        """Why the best checkpoint can't be kept with these settings (checked where users set them)."""
        if self.keep_best and self.eval_steps and self.save_steps and self.save_steps % self.eval_steps:
            return (
                f"must be a multiple of eval_steps ({self.eval_steps}) to keep the best checkpoint: "
                "a checkpoint is only known to be the best when it is evaluated."
            )
        return None

    def cadence(self, train_rows: int) -> tuple[int, int]:
        """(eval_steps, save_steps) for a run on ``train_rows``: the recipe's, or about 12 per run."""
        eval_steps = self.eval_steps or evaluation_cadence(self.total_steps(train_rows))
        return eval_steps, self.save_steps or eval_steps

    def resolve_precision(self, device: str, *, bf16_supported: bool | None = None) -> str:
        """'bf16', 'fp16' or 'fp32' for this device ('cuda...' or 'cpu').

        ``bf16_supported`` says whether the device computes bf16 natively (default: ask this
        machine's GPU, or its CPU for AVX512-BF16/AMX).
        """
        if self.precision != "auto":
            return self.precision
        if not _is_cuda(device):
            # Native bf16 matmuls are about 2.2x faster than fp32 ones on such CPUs (bench/RESULTS.md, 6).
            return "bf16" if (_cpu_bf16_supported() if bf16_supported is None else bf16_supported) else "fp32"
        if bf16_supported is None:
            bf16_supported = _cuda_bf16_supported()
        return "bf16" if bf16_supported else "fp16"

    def resolve_gradient_checkpointing(self, device: str, *, checkpointing_needed: bool) -> bool:
        """'auto' follows the memory estimate on a GPU; on a CPU it only costs time (1.28x measured)."""
        if self.gradient_checkpointing == "on":
            return True
        if self.gradient_checkpointing == "off":
            return False
        return _is_cuda(device) and checkpointing_needed

    def speedup_on(self, name: str, device: str) -> bool:
        """Whether a speed-up setting ('micro_batching', 'liger_kernels', 'fused_optimizer') applies on
        this device: 'auto' means on GPUs only, where each was measured to pay (bench/RESULTS.md)."""
        value = getattr(self, name)
        return value == "on" or (value == "auto" and _is_cuda(device))

    def check_runnable(self, device: str) -> None:
        """Raise :class:`TrainingNotRunnable` if this machine can't run the recipe."""
        cuda = _is_cuda(device)
        if self.method == "qlora":
            if not cuda:
                raise TrainingNotRunnable(
                    "QLoRA needs an NVIDIA GPU, and this machine has none.",
                    "Choose LoRA instead: it trains the same kind of adapter without the 4-bit model.",
                )
            if importlib.util.find_spec("bitsandbytes") is None:
                raise TrainingNotRunnable(
                    "QLoRA needs the bitsandbytes package, which is not installed on this worker.",
                    "Ask the administrator to `pip install bitsandbytes` on the GPU worker, or choose LoRA.",
                )
        if self.liger_kernels == "on" and not (cuda and liger_installed()):
            raise TrainingNotRunnable(
                "Liger's kernels need an NVIDIA GPU and the liger-kernel package"
                + (", which this worker lacks." if cuda else ", and this machine has no GPU."),
                "Set Liger kernels to 'auto' (on where they can run) or 'off'.",
            )
        if self.precision == "fp16" and not cuda:
            raise TrainingNotRunnable(
                "Precision fp16 needs a GPU, and this machine has none.",
                "Choose 'auto' or 'fp32'.",
            )
        if self.precision == "bf16" and not cuda and not _cpu_bf16_supported():
            raise TrainingNotRunnable(
                "Precision bf16 needs a GPU or a CPU with bf16 instructions (AVX512-BF16 or AMX), "
                "and this machine has neither.",
                "Choose 'auto' or 'fp32'.",
            )
        if self.precision == "bf16" and cuda and not _cuda_bf16_supported():
            raise TrainingNotRunnable(
                "This GPU can't train in bf16 (it is older than the Ampere generation).",
                "Choose 'auto' or 'fp16'.",
            )
        if self.report_to != "none" and importlib.util.find_spec(self.report_to) is None:
            raise TrainingNotRunnable(
                f"Reporting to {self.report_to} was asked for, "
                f"but the {self.report_to} package is not installed.",
                f"Install {self.report_to} on the worker or set report_to to 'none'.",
            )


EVALUATIONS_PER_RUN = 12


def evaluation_cadence(total_steps: int, evaluations: int = EVALUATIONS_PER_RUN) -> int:
    """Steps between evaluations so that a run of any length has about ``evaluations`` of them."""
    return max(1, math.ceil(total_steps / evaluations))


def _is_cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def _cpu_bf16_supported() -> bool:
    from lathe_common.cpu import cpu_has_native_bf16

    return cpu_has_native_bf16()


def _cuda_bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


# --- field checks: each returns the cleaned value or raises ValueError ----------


def _int(minimum: int, maximum: int, optional: bool = False):
    def check(value: Any) -> int | None:
        if value is None or value == "":
            if optional:
                return None
            raise ValueError("is required.")
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number, not {_shown(value)}.")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(f"must be a whole number, not {_shown(value)}.") from None
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"must be a whole number, not {_shown(value)}.")
            value = int(value)
        if not isinstance(value, int):
            raise ValueError(f"must be a whole number, not {_shown(value)}.")
        if not minimum <= value <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}; got {_shown(value)}.")
        return value

    return check


def _float(
    minimum: float,
    maximum: float,
    *,
    above_minimum: bool = False,
    below_maximum: bool = False,
    whole_as_int: bool = False,
):
    def check(value: Any) -> float | int:
        if value is None or value == "" or isinstance(value, bool):
            raise ValueError("must be a number.")
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past any float
            raise ValueError(f"must be a number (like 0.1 or 2e-4), not {_shown(value)}.") from None
        too_low = number <= minimum if above_minimum else number < minimum
        too_high = number >= maximum if below_maximum else number > maximum
        if not math.isfinite(number) or too_low or too_high:
            low = "more than" if above_minimum else "at least"
            high = "less than" if below_maximum else "at most"
            raise ValueError(f"must be {low} {minimum:g} and {high} {maximum:g}; got {_shown(value)}.")
        return int(number) if whole_as_int and number.is_integer() else number

    return check


def _choice(choices: tuple[str, ...]):
    def check(value: Any) -> str:
        cleaned = str(value).strip().lower() if value is not None else ""
        if cleaned not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {_shown(value)}.")
        return cleaned

    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in (
        "true",
        "yes",
        "on",
        "1",
        "false",
        "no",
        "off",
        "0",
    ):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise ValueError(f"must be true or false, not {_shown(value)}.")


def _target_modules(value: Any) -> str:
    if isinstance(value, list | tuple):
        if not all(isinstance(item, str) for item in value):
            raise ValueError("must be module names (words like q_proj), one per item of the list.")
        value = ",".join(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be 'attention', 'all_linear' or module names separated by commas.")
    cleaned = value.strip().lower() if value.strip().lower() in TARGET_PRESETS else value.strip()
    if cleaned in TARGET_PRESETS:
        return cleaned
    names = [name.strip() for name in cleaned.split(",") if name.strip()]
    bad = [name for name in names if not _MODULE_NAME.match(name)]
    if not names or bad:
        raise ValueError(
            "must be 'attention', 'all_linear' or module names separated by commas "
            f"(like q_proj,v_proj); these are not module names: {', '.join(bad) or value!r}."
        )
    return ",".join(dict.fromkeys(names))


_LIST_FIELDS = frozenset({"target_modules"})  # the one setting that may be written as a list
_CHECKS = {
    "objective": _choice(OBJECTIVES),
    "method": _choice(METHODS),
    "lora_r": _int(1, 512),
    "lora_alpha": _int(1, 4096),
    "lora_dropout": _float(0.0, 1.0, below_maximum=True),
    "target_modules": _target_modules,
    "use_rslora": _bool,
    "use_dora": _bool,
    "learning_rate": _float(0.0, 1.0, above_minimum=True),
    "num_epochs": _float(0.0, 100.0, above_minimum=True, whole_as_int=True),
    "batch_size": _int(1, 512),
    "grad_accum": _int(1, 1024),
    "max_seq_len": _int(16, 131072),
    "warmup_ratio": _float(0.0, 1.0, below_maximum=True),
    "gradient_checkpointing": _choice(CHECKPOINTING_CHOICES),
    "precision": _choice(PRECISION_CHOICES),
    "gpus": _choice(GPUS_CHOICES),
    "micro_batching": _choice(SPEEDUP_CHOICES),
    "liger_kernels": _choice(SPEEDUP_CHOICES),
    "fused_optimizer": _choice(SPEEDUP_CHOICES),
    "eval_steps": _int(1, 1_000_000, optional=True),
    "save_steps": _int(1, 1_000_000, optional=True),
    "early_stopping_patience": _int(0, 1000),
    "keep_best": _bool,
    "logging_steps": _int(1, 1_000_000),
    "seed": _int(0, 2**32 - 1),
    "max_steps": _int(1, 10_000_000, optional=True),
    "trial_rows": _int(1, 100_000_000, optional=True),
    "beta": _float(0.0, 10.0, above_minimum=True),
    "preference_loss": _choice(PREFERENCE_LOSSES),
    "simpo_gamma": _float(0.0, 10.0),
    "precompute_reference": _bool,
    "rehearsal": _float(0.0, MAX_SHARE),
    "reward": _choice(REWARDS),
    "generations": _int(2, 64),
    "max_answer_tokens": _int(8, 8192),
    "report_to": _choice(REPORT_TO_CHOICES),
}
