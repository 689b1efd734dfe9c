"""Does a recipe teach a small domain set? Held-out questions answered right, per recipe, per set.

    .venv/bin/python bench/recipe_outcomes.py --sets clinic_en,policy_zh --recipes guide,auto
    .venv/bin/python bench/recipe_outcomes.py --sets clinic_en --recipes custom \
        --set learning_rate=1e-3 --set num_epochs=8

For each set of ``bench/domain_sets.py``: the alpaca rows are made canonical and split as the product
splits a new version (10 % held out for validation, seed 42); the demo model is fine-tuned with
``training_app.ml.train.train`` (the trainer the worker runs); then the held-out questions (worded unlike any
training row) are answered greedily, up to 64 new tokens, by the adapter the run kept, by its last
checkpoint, and by the base model, and an answer counts when it contains the fact
(``domain_sets.answer_is_right``). Recipes:

- ``guide``: the seed guide's settings (``Recipe()``: r=64, alpha 16, lr 2e-4, 3 epochs, batch 1 x 8);
- ``auto``: ``training_app.ml.auto_recipe.auto_recipe`` for the set's size and token lengths (what the form
  and the OpenAI API's "auto" start from);
- ``custom``: the guide's settings with ``--set name=value`` changes;
- ``auto+rehearsal``: the automatic settings with ``rehearsal`` 0.5 (the base model's own answers to general
  questions mixed in, as the worker mixes them: ``training_app/ml/rehearsal.py``). ``--set rehearsal=0.5``
  adds it to a custom recipe;
- ``auto+grpo`` (and ``guide+grpo``): the automatic (or the guide's) settings, then GRPO
  (``training_app/ml/reinforcement.py``) from the adapter that run kept, on the same training questions,
  with the product's automatic GRPO settings (``auto_recipe.grpo_after``: one pass, 4 answers per question
  as long as the references need, the reward ``exact`` for label sets and ``facts`` otherwise, a tenth of the
  supervised learning rate; section 22 ran them with answers of up to 64 tokens). The line's ``right_*``
  are the GRPO adapter's; ``sft`` holds the supervised adapter's right answers, so one line compares the
  two on the same held-out questions.

One line per run is appended to bench/out/recipe_outcomes.jsonl (wall time of training, the recipe,
the steps, which checkpoint was kept, right answers of the kept adapter, the last checkpoint and the base,
and the product's general skills check of the kept adapter against the base: did the run forget?).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import domain_sets  # noqa: E402

DEMO_MODEL = REPO / ".data" / "test-cache" / "demo-model"
RESULTS = REPO / "bench" / "out" / "recipe_outcomes.jsonl"


def canonical_split(train_file: Path, folder: Path) -> tuple[Path, Path, list[dict]]:
    from datasets_app.core.canonical import write_rows
    from datasets_app.core.formats import normalize
    from datasets_app.core.split import split_file

    rows = [json.loads(line) for line in train_file.open(encoding="utf-8")]
    canonical = [{"messages": normalize(row, "alpaca"), "source_line": i + 1} for i, row in enumerate(rows)]
    all_rows = folder / "all.jsonl"
    write_rows(all_rows, canonical)
    train_path, validation_path = folder / "train.jsonl", folder / "validation.jsonl"
    split_file(all_rows, train_out=train_path, validation_out=validation_path, validation_share=0.1, seed=42)
    return train_path, validation_path, canonical


def recipe_for(name: str, changes: dict, train_path: Path, base_model_dir: Path):
    from training_app.ml.recipe import Recipe

    if name == "guide+grpo":
        return Recipe(), "the guide's settings, then GRPO"
    if name == "guide":
        return Recipe(), "the guide's settings"
    if name in ("auto", "auto+rehearsal", "auto+grpo"):
        from training_app.ml.auto_recipe import auto_recipe, dataset_shape
        from training_app.ml.rehearsal import SUGGESTED_SHARE

        shape = dataset_shape(train_path, base_model_dir)
        choice = auto_recipe(shape, model_parameters=135e6)
        if name == "auto+rehearsal":
            return choice.recipe.replace(rehearsal=SUGGESTED_SHARE), choice.reason + " With rehearsal."
        return choice.recipe, choice.reason
    return Recipe().replace(**changes), f"custom {changes}"


def grpo_recipe(supervised, shape, changes: dict):
    """GRPO after the supervised run, by the product's rule (``auto_recipe.grpo_after``: one pass over its
    questions, 4 answers each, a tenth of its learning rate, answers as long as the references need, the
    reward by the kind of answers); ``--set reward=``, ``beta=``, ``generations=``, ``max_answer_tokens=``
    override it."""
    from training_app.ml.auto_recipe import grpo_after

    overrides = ("reward", "beta", "generations", "max_answer_tokens")
    return grpo_after(supervised, shape).replace(
        **{name: value for name, value in changes.items() if name in overrides}
    )


def with_rehearsal(train_path: Path, folder: Path, recipe):
    """The training rows with the base model's own answers mixed in, as the worker mixes them
    (training_app/rehearsal.py), the answers cached in bench/out across runs."""
    from training_app.ml.rehearsal import AnswerCache, answer_with_model, mix_rehearsal

    return mix_rehearsal(
        train_path=train_path,
        output_path=folder / "train_with_rehearsal.jsonl",
        share=recipe.rehearsal,
        seed=recipe.seed,
        cache=AnswerCache(RESULTS.parent / "rehearsal-cache" / "demo-model.jsonl"),
        answer=answer_with_model(DEMO_MODEL, recipe),
    )


def score(model, tokenizer, tests: list[dict]) -> tuple[int, list[str]]:
    from training_app.ml.answers import generate_answers

    conversations = [[{"role": "user", "content": test["question"]}] for test in tests]
    answers = generate_answers(model, tokenizer, conversations, max_new_tokens=64)
    return sum(domain_sets.answer_is_right(a, t) for a, t in zip(answers, tests, strict=True)), answers


def general_skills(model, tokenizer) -> tuple[list[bool], list[str]]:
    """The product's general skills check (evals_app/core/general_skills.py), answered greedily with as many
    new tokens as the evaluation job gives them, graded by the product's own grader; and the answers."""
    from evals_app.core.general_skills import EXAM_MAX_TOKENS, grade, load_exam
    from training_app.ml.answers import generate_answers

    exam = load_exam()
    answers = generate_answers(
        model, tokenizer, [item.conversation() for item in exam], max_new_tokens=EXAM_MAX_TOKENS
    )
    return [grade(item, answer) for item, answer in zip(exam, answers, strict=True)], answers


def run(set_name: str, recipe_name: str, changes: dict) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evals_app.core.general_skills import compare
    from training_app.ml.train import train

    train_file, tests_file = domain_sets.build(set_name)
    tests = [json.loads(line) for line in tests_file.open(encoding="utf-8")]
    with tempfile.TemporaryDirectory(prefix="recipe-outcomes-") as tmp:
        folder = Path(tmp)
        train_path, validation_path, _ = canonical_split(train_file, folder)
        recipe, reason = recipe_for(recipe_name, changes, train_path, DEMO_MODEL)
        started = time.monotonic()
        rehearsed = with_rehearsal(train_path, folder, recipe) if recipe.rehearsal else None
        events: list[dict] = []
        verdict_started: list[float] = []

        def on_event(event: dict) -> None:
            if event.get("type") == "verdict_progress" and not verdict_started:
                verdict_started.append(time.monotonic())
            events.append(event)

        result = train(
            base_model_dir=DEMO_MODEL,
            train_path=rehearsed.path if rehearsed else train_path,
            validation_path=validation_path,
            output_dir=folder / "out",
            recipe=recipe,
            on_event=on_event,
        )
        supervised = None
        if recipe_name.endswith("+grpo"):
            supervised, supervised_recipe = result, recipe
            from training_app.ml.auto_recipe import dataset_shape

            recipe = grpo_recipe(supervised_recipe, dataset_shape(train_path, DEMO_MODEL), changes)
            grpo_started = time.monotonic()
            result = train(
                base_model_dir=DEMO_MODEL,
                train_path=train_path,
                validation_path=validation_path,
                output_dir=folder / "grpo",
                recipe=recipe,
                on_event=on_event,
                start_adapter_dir=supervised.adapter_dir,
            )
            grpo_seconds = time.monotonic() - grpo_started
        seconds = time.monotonic() - started
        verdict_seconds = seconds - ((verdict_started[0] - started) if verdict_started else seconds)
        tokenizer = AutoTokenizer.from_pretrained(DEMO_MODEL)
        base = AutoModelForCausalLM.from_pretrained(DEMO_MODEL, dtype=torch.float32)
        base_right, _ = score(base, tokenizer, tests)
        base_skills, base_said = general_skills(base, tokenizer)
        kept = PeftModel.from_pretrained(base, result.adapter_dir)
        kept_right, answers = score(kept, tokenizer, tests)
        kept_skills, kept_said = general_skills(kept, tokenizer)
        sft_right = None
        if supervised is not None:
            base = AutoModelForCausalLM.from_pretrained(DEMO_MODEL, dtype=torch.float32)
            sft_right, _ = score(PeftModel.from_pretrained(base, supervised.adapter_dir), tokenizer, tests)
        last_right = None
        if result.checkpoints and result.best_step is not None and result.best_step != result.final_step:
            base = AutoModelForCausalLM.from_pretrained(DEMO_MODEL, dtype=torch.float32)
            last = PeftModel.from_pretrained(base, result.checkpoints[-1]["path"])
            last_right, _ = score(last, tokenizer, tests)
    evals = [(e["step"], e.get("right_answers", e["eval_loss"])) for e in events if e.get("type") == "eval"]
    line = {
        "set": set_name,
        "recipe_name": recipe_name,
        "reason": reason,
        "recipe": recipe.to_dict(),
        "train_seconds": round(seconds, 1),
        "verdict_seconds": round(verdict_seconds, 1),
        "verdict": {k: result.verdict[k] for k in ("right", "base_right", "total")}
        if result.verdict
        else None,
        "rehearsal_rows": rehearsed.added if rehearsed else 0,
        "final_step": result.final_step,
        "best_step": result.best_step,
        "evals": evals,
        "tests": len(tests),
        "right_kept": kept_right,
        "right_last": last_right,
        "right_base": base_right,
        # auto+grpo: the supervised adapter's right answers, GRPO's time, and its right-answer curves.
        "sft": {
            "right": sft_right,
            "grpo_seconds": round(grpo_seconds, 1),
            "right_answers": [e.get("right_answers") for e in events if e.get("type") == "metrics"],
        }
        if supervised is not None
        else None,
        # The general skills check (48 everyday questions): did the run forget what the base knew?
        "general_skills": {
            "kept": sum(kept_skills),
            "base": sum(base_skills),
            **compare(kept_skills, base_skills),
            # Answers word for word the base model's: how much of its everyday behaviour the run left alone.
            "same_as_base": sum(a == b for a, b in zip(kept_said, base_said, strict=True)),
        },
        "answers": answers[:4],
        "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(line, ensure_ascii=False) + "\n")
    return line


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", default=",".join(domain_sets.SETS))
    parser.add_argument("--recipes", default="guide,auto")
    parser.add_argument("--set", action="append", default=[], help="name=value for the custom recipe")
    args = parser.parse_args()
    changes = {}
    for item in args.set:
        name, value = item.split("=", 1)
        changes[name] = value
    from models_app.ml.demo_model import ensure_demo_model

    ensure_demo_model(DEMO_MODEL)
    for set_name in args.sets.split(","):
        for recipe_name in args.recipes.split(","):
            line = run(set_name, recipe_name, changes)
            print(
                f"{set_name:11} {recipe_name:7} {line['train_seconds']:7.1f}s "
                f"(verdict {line['verdict_seconds']}s "
                f"{line['verdict']}) steps {line['final_step']:4} "
                f"rehearsal {line['rehearsal_rows']} kept {line['best_step']} "
                f"right {line['right_kept']}/{line['tests']} "
                f"(last {line['right_last']}, base {line['right_base']}"
                + (f", supervised {line['sft']['right']}" if line["sft"] else "")
                + ") "
                f"general skills {line['general_skills']['kept']}/48 (base {line['general_skills']['base']}, "
                f"lost {line['general_skills']['lost']}, gained {line['general_skills']['gained']}, "
                f"same answers {line['general_skills']['same_as_base']}, "
                f"{line['general_skills']['verdict']})  {line['reason']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
