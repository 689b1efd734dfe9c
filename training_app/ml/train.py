"""Fine-tune a base model with a recipe: the one entry point the job runner calls.

``train()`` takes paths and a :class:`~training_app.ml.recipe.Recipe`, reports through
``on_event`` (event shapes in :mod:`training_app.ml.callbacks`), checks ``should_stop()``
after every step, and either returns a :class:`TrainResult` or raises a
:class:`~training_app.ml.errors.TrainingError` with a message and a hint for the user.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lathe_common.cpu import fp32_attention
from training_app.ml.callbacks import EventCallback, EventSink, json_number
from training_app.ml.components import (
    check_model_dir,
    divergence_remedies,
    load_model,
    load_tokenizer,
    out_of_memory_remedies,
    peft_config,
    sft_config,
    speedups_described,
    trainer_arguments,
)
from training_app.ml.data import PreparedData, prepare_data
from training_app.ml.distributed import is_main_process, process_count, sharded_run
from training_app.ml.errors import TrainingDiverged, TrainingError, TrainingNotRunnable, TrainingOutOfMemory
from training_app.ml.patches.peft import speed_up_lora_on_cpu
from training_app.ml.patches.trl import score_labelled_positions_only
from training_app.ml.preference import load_start_adapter, prepare_preferences
from training_app.ml.preference_trainers import preference_trainer
from training_app.ml.recipe import ADAPTER_METHOD_NAMES, Recipe
from training_app.ml.reinforcement import grpo_trainer, learning_signal_note, prepare_questions
from training_app.ml.run_outcome import (
    best_checkpoint,
    held_out_verdict,
    log_outcome,
    log_plan,
    stopped_early,
    thread_governor,
)
from training_app.ml.samples import SampleCallback, load_sample_prompts
from training_app.ml.schedule import run_end_callbacks
from training_app.ml.step_batches import micro_batch_fitting

ADAPTER_DIRNAME = "adapter"
CHECKPOINTS_DIRNAME = "checkpoints"
RECIPE_FILENAME = "recipe.yaml"
# The seed guide's remedies for a loss that won't settle.
DIVERGENCE_HINT = (
    "This usually means the learning rate is too high or the data is noisy. Lower the learning rate "
    "to between 1e-5 and 5e-5, keep a warm-up (warmup_ratio 0.1), and check the data for broken "
    "or unusual rows."
)
OUT_OF_MEMORY_HINT = (
    "Retry with shorter sequences (max_seq_len 1024), gradient checkpointing on and batch size 1; "
    "QLoRA needs less memory still."
)


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: str
    checkpoints: list[dict[str, Any]]  # [{"step": int, "path": str}], oldest first
    final_step: int
    train_loss: float | None  # mean training loss over this run's steps
    stopped: bool  # True when should_stop() ended it early (a checkpoint was saved)
    dropped_rows: int  # rows with nothing to learn from, training and validation together
    best_step: int | None = None  # the evaluated checkpoint kept as the adapter (None: the last weights)
    best_eval_loss: float | None = None
    early_stopped: bool = False  # the validation loss stopped improving before the planned end
    verdict: dict[str, Any] | None = None  # training_app.ml.verdict.quick_verdict on the validation rows

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train(
    *,
    base_model_dir: str | Path,
    train_path: str | Path,
    validation_path: str | Path | None,
    output_dir: str | Path,
    recipe: Recipe,
    on_event: EventSink,
    should_stop: Callable[[], bool] = lambda: False,
    resume_from_checkpoint: str | Path | None = None,
    checkpointing_needed: bool = False,
    extra_callbacks: Sequence[Any] = (),
    check_held_out: Callable[[], bool] = lambda: True,
    start_adapter_dir: str | Path | None = None,
) -> TrainResult:
    """Train an adapter into ``output_dir/adapter``; checkpoints go to ``output_dir/checkpoints``.

    ``checkpointing_needed`` is the memory estimate's verdict, used when the
    recipe's gradient checkpointing is "auto". ``resume_from_checkpoint`` is a
    checkpoint folder of an earlier run of the same recipe and data; step numbers
    continue from it. ``extra_callbacks`` join the trainer's (a sweep's pruning);
    ``check_held_out()`` says, once training ends, whether the held-out verdict is worth its time.
    ``start_adapter_dir``: an adapter of the same base to continue from (a supervised one, before DPO).
    """
    import torch

    base_model_dir, output_dir = Path(base_model_dir), Path(output_dir)

    def log(level: str, message: str) -> None:
        on_event({"type": "log", "level": level, "message": message})

    check_model_dir(base_model_dir)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    recipe.check_runnable(device)
    resume = _checkpoint_to_resume(resume_from_checkpoint)

    tokenizer = load_tokenizer(base_model_dir)
    if recipe.preference:
        data = prepare_preferences(
            train_path=train_path,
            validation_path=validation_path,
            paired=recipe.paired,
            trial_rows=recipe.trial_rows,
            seed=recipe.seed,
        )
    elif recipe.reinforced:
        data = prepare_questions(
            train_path=train_path, validation_path=validation_path, trial_rows=recipe.trial_rows
        )
    else:
        data = prepare_data(
            tokenizer=tokenizer,
            train_path=train_path,
            validation_path=validation_path,
            max_seq_len=recipe.max_seq_len,
            trial_rows=recipe.trial_rows,
        )
    _log_data(log, data, recipe)

    precision = recipe.resolve_precision(device)
    checkpointing = recipe.resolve_gradient_checkpointing(device, checkpointing_needed=checkpointing_needed)
    where = torch.cuda.get_device_name() if device == "cuda" else "the CPU"
    fold_up_to = micro_batch_fitting(
        recipe,
        device=device,
        base_model_dir=base_model_dir,
        precision=precision,
        gradient_checkpointing=checkpointing,
        shards=process_count() if sharded_run() and device == "cuda" else 1,
    )
    log(
        "info",
        f"Training {_what_is_trained(recipe, start_adapter_dir)} on {where} in {precision}, "
        f"gradient checkpointing {'on' if checkpointing else 'off'}"
        + "".join(f", {speedup}" for speedup in speedups_described(recipe, device, fold_up_to))
        + (f", resuming from {resume.name}" if resume else "")
        + ".",
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RECIPE_FILENAME).write_text(recipe.to_yaml(), encoding="utf-8")

    # GRPO's loss sits near zero and moves both ways: only a NaN or infinite one means it went wrong.
    callback = EventCallback(on_event, should_stop, watch_rise=not recipe.reinforced)
    # In a distributed run (training_app/ml/distributed.py) rank 0 alone shows samples, saves the
    # adapter and checks the held-out rows; the others only train.
    main_process = is_main_process()
    # A model split across cards (FSDP: GPUs only) computes only with every process taking part, so rank 0
    # cannot answer sample prompts or held-out questions alone: the adapter is checked once deployed.
    sharded = sharded_run() and device == "cuda"
    samples = (
        [SampleCallback(on_event, load_sample_prompts(validation_path), tokenizer)]
        if main_process and not sharded
        else []
    )
    callbacks = [
        callback,
        *samples,
        *run_end_callbacks(recipe, has_validation=data.validation is not None),
        *extra_callbacks,
    ]
    if device == "cpu":
        callbacks.append(thread_governor(log))
    log_plan(log, recipe, data)
    trainer = None
    out_of_memory = False
    try:
        with _quiet_progress_bars():
            trainer = _build_trainer(
                base_model_dir,
                recipe,
                data,
                tokenizer,
                callbacks,
                checkpoints_dir=output_dir / CHECKPOINTS_DIRNAME,
                device=device,
                precision=precision,
                gradient_checkpointing=checkpointing,
                fold_up_to=fold_up_to,
                start_adapter_dir=start_adapter_dir,
            )
            if process_count() > 1:
                how = (
                    "the model's weights split among them (FSDP)"
                    if trainer.is_fsdp_enabled
                    else "each with a whole copy of the model (DDP)"
                )
                log("info", f"Training on {process_count()} processes, {how}.")
            output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
            if callback.diverged is not None:
                step, reason = callback.diverged
                raise TrainingDiverged(
                    f"Training was stopped at step {step}: {reason}.",
                    DIVERGENCE_HINT,
                    remedies=divergence_remedies(recipe),
                    step=step,
                )
            best_step, best_eval_loss = best_checkpoint(trainer.state)
            # A callback that ended the run for its own reason (a sweep pruning a weak trial) says why.
            other_reason = next(
                (c.stop_reason for c in extra_callbacks if getattr(c, "stop_reason", None)), None
            )
            early_stopped = other_reason is None and stopped_early(trainer.state, callback)
            if other_reason:
                log(
                    "info",
                    f"Stopped at step {trainer.state.global_step} of {trainer.state.max_steps}: "
                    f"{other_reason}.",
                )
            log_outcome(log, trainer.state, best_step, best_eval_loss, early_stopped, recipe)
            note = learning_signal_note(callback.reinforcement_history) if recipe.reinforced else None
            if note and main_process:
                log("warning", note)
            adapter_dir = output_dir / ADAPTER_DIRNAME
            if sharded:  # every process hands over its part of the adapter; rank 0 writes the same files
                trainer.save_model(str(adapter_dir))
            elif main_process:
                # A DPO run from the user's adapter also carries trl's frozen reference copy of it ("ref").
                trainer.model.save_pretrained(adapter_dir, selected_adapters=["default"])
            if main_process:
                tokenizer.save_pretrained(adapter_dir)
                log("info", f"Adapter saved (the weights of step {best_step or trainer.state.global_step}).")
            if sharded and main_process:
                log("info", "The held-out check is left to the evaluation: the model is split across cards.")
            verdict = None
            if recipe.preference and main_process:
                log(
                    "info",
                    "The held-out pairs' preference accuracy is on the charts; compare answers with the "
                    "starting model by their win rate under Evaluate.",
                )
            elif main_process and not sharded and not callback.stopped and check_held_out():
                verdict = held_out_verdict(trainer.model, tokenizer, validation_path, on_event, log)
            return TrainResult(
                adapter_dir=str(adapter_dir),
                checkpoints=[dict(checkpoint) for checkpoint in callback.checkpoints],
                final_step=trainer.state.global_step,
                train_loss=json_number(output.training_loss),
                stopped=callback.stopped,
                dropped_rows=data.dropped_rows,
                best_step=best_step,
                best_eval_loss=None if recipe.reinforced else best_eval_loss,
                early_stopped=early_stopped,
                verdict=verdict,
            )
    except torch.OutOfMemoryError:
        out_of_memory = True
    finally:
        # A worker process trains many jobs: let the next one have the GPU memory back.
        trainer = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    # Raised outside the except block, so the traceback (and the model it holds) is already released.
    assert out_of_memory
    raise TrainingOutOfMemory(
        "The GPU ran out of memory.",
        OUT_OF_MEMORY_HINT,
        remedies=out_of_memory_remedies(recipe),
    )


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    """No tqdm bars in the worker's log while training; put them back as they were."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets_bars = not datasets.are_progress_bars_disabled()
    transformers_bars = transformers_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_bars:
            datasets.enable_progress_bars()
        if transformers_bars:
            transformers_logging.enable_progress_bar()


def _build_trainer(
    base_model_dir: Path,
    recipe: Recipe,
    data: PreparedData,
    tokenizer: Any,
    callbacks: list,
    *,
    checkpoints_dir: Path,
    device: str,
    precision: str,
    gradient_checkpointing: bool,
    fold_up_to: int = 0,
    start_adapter_dir: str | Path | None = None,
) -> Any:
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTTrainer

    attention = None
    if device == "cpu":
        score_labelled_positions_only()
        if precision == "bf16":
            attention = fp32_attention()  # the CPU's bf16 attention backward is the slower one
    model = load_model(base_model_dir, recipe, precision=precision, attn_implementation=attention)
    if start_adapter_dir is not None:
        model = load_start_adapter(model, start_adapter_dir)
    arguments = trainer_arguments(
        recipe,
        checkpoints_dir=checkpoints_dir,
        device=device,
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        has_validation=data.validation is not None,
        train_rows=data.train_rows,
        fold_up_to=fold_up_to,
    )
    try:
        if recipe.preference:
            trainer = preference_trainer(model, recipe, data, tokenizer, callbacks, arguments)
        elif recipe.reinforced:
            trainer = grpo_trainer(model, recipe, data, tokenizer, callbacks, arguments)
        else:
            trainer = SFTTrainer(
                model=model,
                args=sft_config(recipe, arguments),
                train_dataset=data.train,
                eval_dataset=data.validation,
                processing_class=tokenizer,
                peft_config=None if start_adapter_dir is not None else peft_config(recipe),
                callbacks=callbacks,
            )
    except ValueError as error:
        if "Target module" not in str(error):
            raise
        raise TrainingNotRunnable(
            f"This model has no layers called {', '.join(recipe.target_module_list)}.",
            f"Its layers that can take an adapter are called: {', '.join(_linear_layer_names(model))}. "
            "Use some of these in target_modules.",
        ) from None
    # With tqdm off, transformers prints every log line to stdout; the events carry them instead.
    trainer.remove_callback(PrinterCallback)
    if device == "cpu":
        speed_up_lora_on_cpu(trainer.model, bf16_autocast=precision == "bf16")
    return trainer


def _what_is_trained(recipe: Recipe, start_adapter_dir: str | Path | None) -> str:
    adapter = ADAPTER_METHOD_NAMES[recipe.method]
    if recipe.objective == "sft":
        return adapter
    start = "on top of the supervised adapter" if start_adapter_dir else "from the base model"
    settings = {
        "grpo": f"{recipe.generations} answers per question of up to {recipe.max_answer_tokens} tokens, "
        f"reward '{recipe.reward}', beta {recipe.beta:g}",
        "dpo": f"{recipe.preference_loss} loss, beta {recipe.beta:g}",
        "orpo": f"lambda {recipe.beta:g}, no reference model",
        "simpo": f"beta {recipe.beta:g}, margin {recipe.simpo_gamma:g}, no reference model",
        "kto": f"beta {recipe.beta:g}",
    }[recipe.objective]
    return f"{adapter} by {recipe.objective_name} ({settings}) {start}"


def _linear_layer_names(model: Any) -> list[str]:
    import torch

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    names.discard("lm_head")
    return sorted(names)


def _checkpoint_to_resume(path: str | Path | None) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not (path / "trainer_state.json").is_file():
        raise TrainingError(
            f"The checkpoint {path.name} to resume from is missing or incomplete.",
            "Start the training again from the beginning, or resume from another checkpoint.",
        )
    return path


def _log_data(log: Callable[[str, str], None], data: PreparedData, recipe: Recipe) -> None:
    units = {"sft": "conversations", "grpo": "questions", "kto": "rated answers"}
    unit = units.get(recipe.objective, "pairs")
    message = f"{data.train_rows} training {unit}"
    if data.validation is not None:
        message += f" and {data.validation_rows} for validation"
    log(
        "info",
        message + (f" (trial run: the first {recipe.trial_rows} of each)." if recipe.trial_rows else "."),
    )
    if recipe.objective == "kto":
        from training_app.ml.preference_trainers import kto_weights

        desirable, undesirable = kto_weights(data.train["label"])
        good = sum(data.train["label"])
        log(
            "info",
            f"{good} good and {data.train_rows - good} bad answers: bad answers weigh {undesirable:.2f} "
            f"against {desirable:.2f} for good ones, so both count as much (the KTO paper's advice).",
        )
    why = (
        "a rated answer, not a pair"
        if recipe.paired
        else f"no assistant reply remains once cut to {recipe.max_seq_len} tokens"
        if recipe.objective == "sft"
        else "no answer to learn from"
    )
    for name, count, lines in (
        ("training", data.dropped_train_rows, data.dropped_train_lines),
        ("validation", data.dropped_validation_rows, data.dropped_validation_lines),
    ):
        if count:
            shown = ", ".join(str(line) for line in lines) + (", ..." if count > len(lines) else "")
            log("warning", f"{count} {name} rows were left out: {why} (lines {shown}).")
