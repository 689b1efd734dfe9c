"""From a recipe to the objects trl trains with: tokenizer, base model, PEFT and trainer configs.

Models are only ever loaded from a local folder: no Hub look-ups, and never
``trust_remote_code`` (a model folder must not be able to run code on a worker).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training_app.ml.distributed import per_process_batch, process_count, sharded_run
from training_app.ml.errors import TrainingModelMissing
from training_app.ml.recipe import MLP_MODULES, Recipe, liger_installed

_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def check_model_dir(base_model_dir: Path) -> None:
    if not base_model_dir.is_dir():
        raise TrainingModelMissing(
            f"The base model folder {base_model_dir} is missing.",
            "The model may have been deleted or not downloaded yet: add it again under Models.",
        )
    if not (base_model_dir / "config.json").is_file():
        raise TrainingModelMissing(
            f"The folder {base_model_dir} holds no model (there is no config.json).",
            "Point the base model at a Hugging Face model folder, or download it again.",
        )
    if not any(next(base_model_dir.glob(pattern), None) for pattern in _WEIGHT_PATTERNS):
        raise TrainingModelMissing(
            f"The base model folder {base_model_dir} has no weight files.",
            "The download may have stopped half-way: download the model again.",
        )


def load_tokenizer(base_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base_model_dir, local_files_only=True)
    except (OSError, ValueError) as error:
        raise TrainingModelMissing(
            f"The tokenizer in {base_model_dir} could not be loaded ({error}).",
            "The model folder looks incomplete: download the model again.",
        ) from None
    if tokenizer.pad_token is None:
        # Padding positions are masked out of attention and loss, so any known token will do.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(precision: str) -> Any:
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def load_model(
    base_model_dir: Path, recipe: Recipe, *, precision: str, attn_implementation: str | None = None
) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": torch_dtype(precision)}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if recipe.method == "qlora":
        from transformers import BitsAndBytesConfig

        split = sharded_run()
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch_dtype(precision),
            # Split across cards, FSDP shards the packed 4-bit weights as tensors of this dtype (peft's
            # FSDP-QLoRA recipe); each process then places its own shard, so no device map.
            **({"bnb_4bit_quant_storage": torch_dtype(precision)} if split else {}),
        )
        if not split:
            kwargs["device_map"] = {"": torch.cuda.current_device()}
    try:
        model = AutoModelForCausalLM.from_pretrained(base_model_dir, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise TrainingModelMissing(
            f"The base model in {base_model_dir} could not be loaded ({error}).",
            "The folder may be incomplete or hold a kind of model Lathe can't train: download it again "
            "or pick another model.",
        ) from None
    model.config.use_cache = False  # the generation cache only costs memory while training
    return model


def peft_config(recipe: Recipe) -> Any:
    from peft import IA3Config, LoraConfig

    targets = recipe.target_module_list
    if recipe.method == "ia3":
        # IA3 scales the input of feed-forward layers (the paper does so for down_proj),
        # the output of the others.
        return IA3Config(
            task_type="CAUSAL_LM",
            target_modules=targets,
            feedforward_modules=[name for name in targets if name in MLP_MODULES[2:]],
        )
    return LoraConfig(
        task_type="CAUSAL_LM",
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=targets,
        bias="none",
        use_rslora=recipe.use_rslora,
        use_dora=recipe.use_dora,
    )


def sft_config(recipe: Recipe, arguments: dict[str, Any]) -> Any:
    """The supervised trainer's settings: the shared ``arguments`` (:func:`trainer_arguments`)."""
    from trl import SFTConfig

    return SFTConfig(**arguments, packing=False)


def trainer_arguments(
    recipe: Recipe,
    *,
    checkpoints_dir: Path,
    device: str,
    precision: str,
    gradient_checkpointing: bool,
    has_validation: bool,
    train_rows: int,
    fold_up_to: int = 0,
) -> dict[str, Any]:
    """The settings every trl trainer shares (supervised or preference).
    `fold_up_to`: the largest micro-batch that fits (step_batches.py)."""
    eval_steps, save_steps = recipe.cadence(train_rows)
    keep_best = keeps_best_checkpoint(recipe, has_validation=has_validation, train_rows=train_rows)
    # Under torchrun the processes share the recipe's global batch (training_app/ml/distributed.py).
    processes = process_count()
    micro_batch, accumulation = per_process_batch(recipe, processes, fold_up_to)
    distributed = {}
    if processes > 1:
        distributed = {
            "ddp_backend": "gloo" if device == "cpu" else "nccl",
            "ddp_find_unused_parameters": False,  # every adapter weight takes part in every step
        }
    if sharded_run() and device == "cuda":
        # FSDP 2 (torch's fully_shard): each decoder layer's weights are split across the processes and
        # gathered only while that layer computes. Layers to wrap: the model's own _no_split_modules.
        # accelerate offers FSDP on GPUs only: on a CPU the processes stay DDP.
        distributed = {
            "ddp_backend": distributed["ddp_backend"],
            "fsdp": "full_shard auto_wrap",
            "fsdp_config": {
                "fsdp_version": 2,
                "reshard_after_forward": True,
                "state_dict_type": "FULL_STATE_DICT",
            },
        }
    return dict(
        output_dir=str(checkpoints_dir),
        per_device_train_batch_size=micro_batch,
        per_device_eval_batch_size=micro_batch,
        gradient_accumulation_steps=accumulation,
        **distributed,
        learning_rate=recipe.learning_rate,
        num_train_epochs=recipe.num_epochs,
        max_steps=recipe.max_steps or -1,
        # transformers 5 dropped warmup_ratio: a warmup_steps value below 1 is the share of all steps.
        warmup_steps=recipe.warmup_ratio,
        # The recipe's speed-ups ('auto': on GPUs; bench/RESULTS.md, section 5): fused AdamW (one kernel for
        # all parameters), micro-batches of similar lengths (less padding computed), Liger's kernels.
        optim="adamw_torch_fused" if recipe.speedup_on("fused_optimizer", device) else "adamw_torch",
        train_sampling_strategy="group_by_length"
        if device == "cuda" and micro_batch > 1 and recipe.micro_batching != "off"
        else "random",
        use_liger_kernel=liger_used(recipe, device),
        logging_steps=recipe.logging_steps,
        eval_strategy="steps" if has_validation else "no",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=save_steps,
        # transformers keeps the evaluated checkpoint with the lowest validation loss and loads it back
        # at the end (the adapter only, through peft); early stopping needs the same bookkeeping.
        load_best_model_at_end=keep_best,
        metric_for_best_model="eval_loss" if has_validation else None,
        greater_is_better=False if has_validation else None,
        # trl's defaults (bf16 on, checkpointing on) would break or slow a CPU run: set both explicitly.
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        seed=recipe.seed,
        data_seed=recipe.seed,
        max_length=recipe.max_seq_len,
        report_to=[] if recipe.report_to == "none" else [recipe.report_to],
        disable_tqdm=True,
        dataloader_num_workers=0,
        log_level="warning",
    )


def liger_used(recipe: Recipe, device: str) -> bool:
    """Liger's kernels: where the recipe allows them and they can run (a GPU with liger-kernel)."""
    return recipe.speedup_on("liger_kernels", device) and device == "cuda" and liger_installed()


def speedups_described(recipe: Recipe, device: str, fold_up_to: int) -> list[str]:
    """The speed-ups this run uses, in words, for its log."""
    described = []
    if fold_up_to > recipe.batch_size:
        micro, _ = per_process_batch(recipe, process_count(), fold_up_to)
        grouped = " grouped by length" if device == "cuda" else ""
        described.append(f"{micro} conversations at a time{grouped}")
    if liger_used(recipe, device):
        described.append("Liger kernels")
    if recipe.speedup_on("fused_optimizer", device):
        described.append("fused AdamW")
    return described


def keeps_best_checkpoint(recipe: Recipe, *, has_validation: bool, train_rows: int) -> bool:
    """Whether the run ends on its best evaluated checkpoint: needs a validation set and checkpoints
    taken at evaluations."""
    if not has_validation or not recipe.keep_best:
        return False
    eval_steps, save_steps = recipe.cadence(train_rows)
    return save_steps % eval_steps == 0


def out_of_memory_remedies(recipe: Recipe) -> dict[str, Any]:
    """The guide's three remedies, keeping the effective batch (batch x accumulation) unchanged."""
    return {
        "max_seq_len": max(256, min(1024, recipe.max_seq_len // 2)),
        "gradient_checkpointing": "on",
        "batch_size": 1,
        "grad_accum": recipe.effective_batch_size,
    }


def divergence_remedies(recipe: Recipe) -> dict[str, Any]:
    """The guide's advice for a loss that won't settle: a smaller learning rate and a warm-up."""
    learning_rate = 2e-5 if recipe.learning_rate > 5e-5 else max(1e-6, recipe.learning_rate / 2)
    return {"learning_rate": learning_rate, "warmup_ratio": max(0.1, recipe.warmup_ratio)}
