"""The automatic recipe: settings chosen from the data's size and lengths and the model's size.

A domain expert does not know what a learning rate is; they know whether the model answers their
questions. The rule below was found by measuring held-out answers on several small domain sets
(facts in English and Chinese, classification, style; bench/recipe_outcomes.py, bench/RESULTS.md
section 9), not by guessing. It states itself in plain words (``AutoChoice.reason``) so the job page
can say why a run trains the way it does.

The guide's recipe (3 epochs at 2e-4, r=64 with alpha 16) suits the 5,000+ rows the guide asks for.
On a small set it shows each fact too few times, too gently: the loss falls, the style is learned,
the facts are not. So small sets get more passes, a stronger adapter and a higher learning rate,
with evaluations through the run, early stopping and the best checkpoint kept, which keep the extra
passes from memorising the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training_app.ml.recipe import Recipe

# Passes over the data so that a small set's facts are seen often enough; a large set needs fewer.
EXAMPLES_TO_SEE = 1000
MIN_EPOCHS, MAX_EPOCHS = 2, 10
SMALL_ROWS = 2000  # below this, facts must be learned from few examples
LEARNING_RATE_SMALL, LEARNING_RATE_LARGE = 5e-4, 2e-4
LORA_RANK, LORA_ALPHA = 16, 32
EARLY_STOPPING_PATIENCE = 3
# Models above this many parameters get a gentler learning rate (LoRA on a big model moves more per step).
LARGE_MODEL_PARAMETERS = 20e9
MAX_SEQ_LEN = 2048
SHORT_ROW_TOKENS = 512
# DPO refines a model rather than teaching it: a learning rate 10x below supervised LoRA's, few passes (it
# overfits the pairs quickly), and trl's beta 0.1 (alignment-handbook's and LLaMA-Factory's defaults).
DPO_LEARNING_RATE, DPO_MAX_EPOCHS, DPO_BETA = 5e-5, 3, 0.1
# GRPO sharpens a supervised adapter's answers: one pass over the questions at a tenth of the supervised
# learning rate, 4 answers to each (bench/RESULTS.md section 22 measured these). Writing the answers is most
# of its time, so they may be about twice as long as the references' 95th percentile (at least the longest).
GRPO_EPOCHS, GRPO_LEARNING_RATE_SHARE, GRPO_GENERATIONS = 1, 0.1, 4
GRPO_ANSWER_TOKENS_MIN, GRPO_ANSWER_TOKENS_MAX, GRPO_ANSWER_TOKENS_STEP = 32, 1024, 32
# Answers that are a few distinct short labels (a classification set) are right only when they are the label.
LABEL_SET_MAX_DISTINCT, LABEL_MAX_TOKENS = 50, 16


@dataclass(frozen=True)
class DatasetShape:
    rows: int  # training rows
    mean_tokens: float
    max_tokens: int
    pairs: bool = False  # preference pairs (a better and a worse answer): DPO's data
    rated: bool = False  # answers rated good or bad one by one: KTO's data
    answer_tokens_p95: int = 0  # the final answers' lengths (0: not counted, a version made before they were)
    answer_tokens_max: int = 0
    distinct_answers: int | None = None  # how many final answers differ (counted up to 1,000)

    @property
    def label_set(self) -> bool:
        """The answers are a few short labels, each used by several rows (a classification set)."""
        distinct = self.distinct_answers
        return (
            distinct is not None
            and 0 < self.answer_tokens_p95 <= LABEL_MAX_TOKENS
            and distinct <= LABEL_SET_MAX_DISTINCT
            and 2 * distinct <= self.rows
        )


@dataclass(frozen=True)
class AutoChoice:
    recipe: Recipe
    reason: str  # one or two sentences for the job page

    def to_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe.to_dict(), "reason": self.reason}


def effective_batch(rows: int) -> int:
    """Examples per weight update: small sets need more updates per pass, large ones steadier ones."""
    if rows < 200:
        return 4
    if rows < 5000:
        return 8
    return 16


def device_batch(effective: int, max_tokens: int) -> int:
    """Rows per forward pass: short rows go together (1.9x the tokens/s of one at a time on a CPU,
    bench/RESULTS.md section 9), long ones one at a time with gradient accumulation, as the guide does."""
    if max_tokens <= SHORT_ROW_TOKENS:
        return effective
    if max_tokens <= 2 * SHORT_ROW_TOKENS:
        return min(2, effective)
    return 1


def auto_epochs(rows: int) -> int:
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(EXAMPLES_TO_SEE / max(1, rows))))


def auto_max_seq_len(max_tokens: int) -> int:
    """Long enough for the longest row (rounded up to 256 tokens), at most the guide's 2,048."""
    return min(MAX_SEQ_LEN, max(256, math.ceil(max(1, max_tokens) / 256) * 256))


def auto_recipe(
    shape: DatasetShape, *, model_parameters: float | None = None, base: Recipe | None = None
) -> AutoChoice:
    """The automatic settings for ``shape``; ``base`` supplies everything the rule does not choose."""
    base = base or Recipe()
    rows = max(1, shape.rows)
    small = rows < SMALL_ROWS
    epochs = auto_epochs(rows)
    learning_rate = LEARNING_RATE_SMALL if small else LEARNING_RATE_LARGE
    if model_parameters and model_parameters > LARGE_MODEL_PARAMETERS:
        learning_rate /= 2
    batch = effective_batch(rows)
    per_pass = device_batch(batch, shape.max_tokens)
    recipe = base.replace(
        lora_r=LORA_RANK,
        lora_alpha=LORA_ALPHA,
        target_modules="all_linear",
        learning_rate=learning_rate,
        num_epochs=epochs,
        batch_size=per_pass,
        grad_accum=batch // per_pass,
        max_seq_len=auto_max_seq_len(shape.max_tokens),
        warmup_ratio=0.05,
        eval_steps=None,
        save_steps=None,
        early_stopping_patience=EARLY_STOPPING_PATIENCE,
        keep_best=True,
    )
    size = "short" if shape.mean_tokens < 200 else "long" if shape.mean_tokens > 1000 else "medium-length"
    if shape.rated:
        return _kto_choice(recipe, rows, size)
    if shape.pairs:
        return _dpo_choice(recipe, rows, size)
    if base.objective == "grpo":
        return _grpo_choice(recipe, shape, size)
    if small:
        why = (
            f"{rows:,} {size} rows: {epochs} passes over the data at learning rate {learning_rate:g} "
            f"so the model sees each fact about {epochs} times, with LoRA r={LORA_RANK} on every layer"
        )
    else:
        why = (
            f"{rows:,} {size} rows: {epochs} passes at learning rate {learning_rate:g} "
            f"(a large set teaches by its variety, not by repetition), LoRA r={LORA_RANK} on every layer"
        )
    reason = (
        f"{why}. Validation loss is checked about 12 times; training stops once it has not improved for "
        f"{EARLY_STOPPING_PATIENCE} checks, and the checkpoint with the lowest one is kept."
    )
    return AutoChoice(recipe=recipe, reason=reason)


def dataset_shape(train_path: str | Path, base_model_dir: str | Path) -> DatasetShape:
    """The shape of a canonical JSONL file, counted with the model's chat template (for scripts)."""
    import numpy as np
    import orjson
    from transformers import AutoTokenizer

    from datasets_app.core.stats import answer_key, final_answer

    tokenizer = AutoTokenizer.from_pretrained(base_model_dir, local_files_only=True)
    lengths, answer_lengths, answers = [], [], set()
    with open(train_path, "rb") as handle:
        for line in handle:
            if line.strip():
                row = orjson.loads(line)
                text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
                lengths.append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
                answer = final_answer(row)
                answer_lengths.append(len(tokenizer(answer, add_special_tokens=False)["input_ids"]))
                answers.add(answer_key(answer))
    return DatasetShape(
        rows=len(lengths),
        mean_tokens=sum(lengths) / max(1, len(lengths)),
        max_tokens=max(lengths, default=0),
        answer_tokens_p95=int(np.percentile(answer_lengths, 95, method="nearest")) if answer_lengths else 0,
        answer_tokens_max=max(answer_lengths, default=0),
        distinct_answers=len(answers),
    )


def grpo_answer_tokens(shape: DatasetShape, default: int) -> int:
    """The longest answer GRPO lets the model write: twice the references' 95th percentile, at least the
    longest reference, rounded up to 32 tokens, within 32..1,024; ``default`` when they were not counted."""
    if not shape.answer_tokens_max:
        return default
    wanted = max(2 * shape.answer_tokens_p95, shape.answer_tokens_max)
    rounded = math.ceil(wanted / GRPO_ANSWER_TOKENS_STEP) * GRPO_ANSWER_TOKENS_STEP
    return max(GRPO_ANSWER_TOKENS_MIN, min(GRPO_ANSWER_TOKENS_MAX, rounded))


def grpo_after(supervised: Recipe, shape: DatasetShape) -> Recipe:
    """GRPO's settings after a supervised run with ``supervised`` on questions of this ``shape``: one pass
    at a tenth of its learning rate, 4 answers each, as long as the references need, the reward by kind."""
    return supervised.replace(
        objective="grpo",
        num_epochs=GRPO_EPOCHS,
        learning_rate=supervised.learning_rate * GRPO_LEARNING_RATE_SHARE,
        generations=GRPO_GENERATIONS,
        max_answer_tokens=grpo_answer_tokens(shape, supervised.max_answer_tokens),
        reward="exact" if shape.label_set else "facts",
    )


def _grpo_choice(recipe: Recipe, shape: DatasetShape, size: str) -> AutoChoice:
    recipe = grpo_after(recipe, shape)
    counted = (
        f"{shape.distinct_answers} different short answers, so an answer is right only when it is the "
        "reference (reward 'exact')"
        if recipe.reward == "exact"
        else "an answer is right when it carries the reference answer's facts (reward 'facts')"
    )
    reason = (
        f"{shape.rows:,} {size} questions: GRPO, one pass at learning rate {recipe.learning_rate:g} (a "
        f"tenth of the supervised one: it sharpens answers rather than teaching them), {GRPO_GENERATIONS} "
        f"answers to each question of up to {recipe.max_answer_tokens} tokens; {counted}. It starts best "
        "from a supervised adapter that gets these questions right some of the time. The validation "
        "questions' right answers are checked through the run and the checkpoint with the most is kept."
    )
    return AutoChoice(recipe=recipe, reason=reason)


def _dpo_choice(recipe: Recipe, rows: int, size: str) -> AutoChoice:
    epochs = min(DPO_MAX_EPOCHS, auto_epochs(rows))
    recipe = recipe.replace(
        objective="dpo",
        learning_rate=DPO_LEARNING_RATE,
        num_epochs=epochs,
        beta=DPO_BETA,
        preference_loss="sigmoid",
    )
    reason = (
        f"{rows:,} {size} preference pairs: DPO with beta {DPO_BETA:g} at learning rate "
        f"{DPO_LEARNING_RATE:g}, {epochs} passes (preference tuning refines a model, so it moves it gently), "
        f"LoRA r={LORA_RANK} on every layer. The charts show how often the model prefers the better answer "
        "of the validation pairs; training stops once the validation loss has not improved for "
        f"{EARLY_STOPPING_PATIENCE} checks."
    )
    return AutoChoice(recipe=recipe, reason=reason)


def _kto_choice(recipe: Recipe, rows: int, size: str) -> AutoChoice:
    """KTO refines a model as DPO does, with DPO's gentle settings (the KTO paper matches DPO's beta)."""
    epochs = min(DPO_MAX_EPOCHS, auto_epochs(rows))
    recipe = recipe.replace(
        objective="kto", learning_rate=DPO_LEARNING_RATE, num_epochs=epochs, beta=DPO_BETA
    )
    reason = (
        f"{rows:,} {size} answers rated good or bad: KTO with beta {DPO_BETA:g} at learning rate "
        f"{DPO_LEARNING_RATE:g}, {epochs} passes, LoRA r={LORA_RANK} on every layer; good and bad answers "
        "are weighted so both count as much. The rewards chart shows the good answers' reward climbing "
        "above the bad ones'."
    )
    return AutoChoice(recipe=recipe, reason=reason)


# Before GRPO: shares of held-out questions a start adapter answered right (its run's verdict, greedy) past
# which GRPO is likely to find little to reinforce (bench/RESULTS.md section 22: 2 of 24 right left nothing).
RARELY_RIGHT, NEARLY_ALWAYS_RIGHT = 0.2, 0.9


def start_adapter_outlook(right: int, total: int) -> str:
    """ "rarely" or "nearly_always" right (GRPO will likely find little to learn), or "sometimes"."""
    share = right / total if total else 0.0
    if share < RARELY_RIGHT:
        return "rarely"
    return "nearly_always" if share >= NEARLY_ALWAYS_RIGHT else "sometimes"


def start_adapter_note(name: str, right: int, total: int) -> str:
    """What a start adapter's held-out verdict says about GRPO from it, before any GPU time is spent."""
    said = f"{name} answered {right} of {total} held-out questions right after its training. "
    outlook = start_adapter_outlook(right, total)
    if outlook == "rarely":
        return said + (
            "GRPO reinforces answers the model sometimes gets right, so from this adapter it will find "
            "little to reinforce: train a supervised adapter that knows these questions better first (the "
            "automatic settings), then start GRPO from it."
        )
    if outlook == "nearly_always":
        return said + (
            "It already answers nearly all of them right, so GRPO has little left to sharpen: add questions "
            "it still gets wrong, or keep this adapter."
        )
    return said + "It is right some of the time: GRPO has answers to reinforce."
