"""trl's preference trainers, one per objective, with the recipe's settings (no Django).

- DPO (``trl.DPOTrainer``): pairs, measured against a reference: the starting point with the adapter
  switched off (a new adapter), or a frozen copy of the supervised adapter it starts from ("SFT then
  DPO"), which trl keeps as a second adapter on the same base weights (no second copy of the model).
- ORPO (``trl.experimental.orpo``): pairs, no reference; the supervised loss on the better answer plus an
  odds-ratio term (weighted by beta, ORPO's lambda) that pushes the worse answer down. Meant to run from
  the base model in one go.
- SimPO (``trl.experimental.cpo`` with ``loss_type="simpo"`` and no behaviour-cloning term): pairs, no
  reference; answers are scored by their mean log-probability per token, so a longer answer gains nothing
  by its length; ``simpo_gamma`` is the margin the better answer must win by.
- KTO (``trl.KTOTrainer``): answers rated good or bad one by one, measured against a reference like DPO;
  its KL estimate pairs each answer with its neighbours' in a fixed order, so it needs at least two answers
  per device batch, read sequentially.

Every trainer logs ``rewards/chosen``, ``rewards/rejected`` and ``rewards/margins`` (callbacks.py turns
them into the job's reward events); all but KTO log ``rewards/accuracies`` too.
"""

from __future__ import annotations

from typing import Any

from training_app.ml.components import peft_config
from training_app.ml.data import PreparedData
from training_app.ml.recipe import Recipe

# Robust DPO's assumed share of pairs labelled the wrong way round (the paper's typical value).
ROBUST_LABEL_SMOOTHING = 0.1
# KTO's KL estimate needs another answer in the same device batch.
KTO_MIN_DEVICE_BATCH = 2


def preference_trainer(
    model: Any, recipe: Recipe, data: PreparedData, tokenizer: Any, callbacks: list, arguments: dict[str, Any]
) -> Any:
    """The trainer of the recipe's objective for ``model``: a plain model gets a new adapter (peft_config);
    a model that already carries the user's supervised adapter trains that one."""
    from peft import PeftModel

    trainer_class, config = _BUILDERS[recipe.objective](recipe, arguments, data)
    return trainer_class(
        model=model,
        args=config,
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        peft_config=None if isinstance(model, PeftModel) else peft_config(recipe),
        callbacks=callbacks,
    )


def dpo_config(recipe: Recipe, arguments: dict[str, Any]) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        **arguments,
        beta=recipe.beta,
        loss_type=[recipe.preference_loss],
        label_smoothing=ROBUST_LABEL_SMOOTHING if recipe.preference_loss == "robust" else 0.0,
        precompute_ref_log_probs=recipe.precompute_reference,
    )


def _dpo(recipe: Recipe, arguments: dict[str, Any], data: PreparedData) -> tuple[type, Any]:
    from trl import DPOTrainer

    return DPOTrainer, dpo_config(recipe, arguments)


def _orpo(recipe: Recipe, arguments: dict[str, Any], data: PreparedData) -> tuple[type, Any]:
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    return ORPOTrainer, ORPOConfig(**arguments, beta=recipe.beta)


def _simpo(recipe: Recipe, arguments: dict[str, Any], data: PreparedData) -> tuple[type, Any]:
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    config = CPOConfig(
        **arguments,
        loss_type="simpo",
        cpo_alpha=0.0,  # SimPO proper: no behaviour-cloning term on the better answer
        beta=recipe.beta,
        simpo_gamma=recipe.simpo_gamma,
    )
    return CPOTrainer, config


def kto_weights(labels: list[bool]) -> tuple[float, float]:
    """(desirable, undesirable) weights that balance good and bad answers of unequal counts: the KTO
    paper advises weighted good answers over weighted bad ones between 1 and 4/3; Lathe aims at 1."""
    good = sum(1 for label in labels if label)
    bad = len(labels) - good
    if not good or not bad:
        return 1.0, 1.0
    return 1.0, good / bad


def kto_batch(arguments: dict[str, Any]) -> dict[str, Any]:
    """The shared arguments as KTO needs them: answers read in a fixed (pre-shuffled) order, and at least
    two per device batch, with as many fewer accumulation steps (the same answers per update, or close)."""
    micro_batch = arguments["per_device_train_batch_size"]
    accumulation = arguments["gradient_accumulation_steps"]
    if micro_batch < KTO_MIN_DEVICE_BATCH:
        accumulation = max(1, -(-accumulation * micro_batch // KTO_MIN_DEVICE_BATCH))
        micro_batch = KTO_MIN_DEVICE_BATCH
    return {
        **arguments,
        "per_device_train_batch_size": micro_batch,
        "per_device_eval_batch_size": max(micro_batch, arguments["per_device_eval_batch_size"]),
        "gradient_accumulation_steps": accumulation,
        "train_sampling_strategy": "sequential",
    }


def _kto(recipe: Recipe, arguments: dict[str, Any], data: PreparedData) -> tuple[type, Any]:
    from trl import KTOConfig, KTOTrainer

    desirable, undesirable = kto_weights(data.train["label"])
    config = KTOConfig(
        **kto_batch(arguments),
        beta=recipe.beta,
        desirable_weight=desirable,
        undesirable_weight=undesirable,
        precompute_ref_log_probs=recipe.precompute_reference,
    )
    return KTOTrainer, config


_BUILDERS = {"dpo": _dpo, "orpo": _orpo, "simpo": _simpo, "kto": _kto}
