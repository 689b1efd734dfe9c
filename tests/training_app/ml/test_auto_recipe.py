"""The automatic recipe: what it chooses for small and large data, and how it says why."""

from __future__ import annotations

from training_app.ml.auto_recipe import DatasetShape, auto_recipe, start_adapter_note
from training_app.ml.recipe import Recipe


def test_it_gives_a_small_set_many_passes_at_a_high_learning_rate():
    choice = auto_recipe(DatasetShape(rows=100, mean_tokens=80, max_tokens=150), model_parameters=135e6)
    recipe = choice.recipe
    assert recipe.num_epochs == 10
    assert recipe.learning_rate > Recipe().learning_rate
    assert (recipe.batch_size, recipe.grad_accum) == (4, 1)  # short rows go through together
    assert (recipe.lora_r, recipe.lora_alpha, recipe.target_modules) == (16, 32, "all_linear")
    assert recipe.early_stopping_patience == 3 and recipe.keep_best
    assert (recipe.eval_steps, recipe.save_steps) == (None, None)  # about 12 evaluations, whatever the length
    assert recipe.max_seq_len == 256
    assert "100 short rows: 10 passes" in choice.reason
    assert "stops once it has not improved for 3 checks" in choice.reason


def test_it_gives_a_large_set_few_passes_at_the_usual_learning_rate():
    recipe = auto_recipe(DatasetShape(rows=20_000, mean_tokens=600, max_tokens=5000)).recipe
    assert recipe.num_epochs == 2
    assert recipe.learning_rate == 2e-4
    assert (recipe.batch_size, recipe.grad_accum) == (1, 16)  # long rows one at a time
    assert recipe.max_seq_len == 2048  # the guide's limit: longer rows are cut


def test_it_scales_passes_between_the_two():
    epochs = [
        auto_recipe(DatasetShape(rows=rows, mean_tokens=50, max_tokens=60)).recipe.num_epochs
        for rows in (50, 150, 300, 600, 3000)
    ]
    assert epochs == sorted(epochs, reverse=True)
    assert epochs[0] == 10 and epochs[-1] == 2


def test_it_is_gentler_on_a_very_large_model():
    small_model = auto_recipe(DatasetShape(rows=100, mean_tokens=80, max_tokens=150), model_parameters=7e9)
    big_model = auto_recipe(DatasetShape(rows=100, mean_tokens=80, max_tokens=150), model_parameters=72e9)
    assert big_model.recipe.learning_rate == small_model.recipe.learning_rate / 2


def test_it_keeps_the_settings_it_does_not_choose():
    base = Recipe(seed=7, precision="fp32", method="qlora")
    recipe = auto_recipe(DatasetShape(rows=100, mean_tokens=80, max_tokens=150), base=base).recipe
    assert (recipe.seed, recipe.precision, recipe.method) == (7, "fp32", "qlora")


def test_a_recipe_cadence_gives_about_twelve_evaluations():
    recipe = Recipe(num_epochs=10, grad_accum=4)
    assert recipe.total_steps(100) == 250
    assert recipe.cadence(100) == (21, 21)
    assert Recipe(max_steps=5).cadence(1000) == (1, 1)
    assert Recipe(eval_steps=50, save_steps=100).cadence(100) == (50, 100)


def test_keeping_the_best_checkpoint_needs_checkpoints_on_evaluations():
    assert Recipe(eval_steps=50, save_steps=100).cadence_problem() is None
    assert "multiple of eval_steps (20)" in Recipe(eval_steps=20, save_steps=30).cadence_problem()
    assert Recipe(eval_steps=20, save_steps=30, keep_best=False).cadence_problem() is None


def _questions(**answers) -> DatasetShape:
    return DatasetShape(rows=100, mean_tokens=80, max_tokens=150, **answers)


def test_grpo_gets_one_gentle_pass_with_answers_as_long_as_the_references_need():
    supervised = auto_recipe(_questions(), model_parameters=135e6).recipe
    choice = auto_recipe(
        _questions(answer_tokens_p95=30, answer_tokens_max=50, distinct_answers=100),
        model_parameters=135e6,
        base=Recipe(objective="grpo"),
    )
    recipe = choice.recipe
    assert recipe.objective == "grpo" and recipe.reinforced
    assert recipe.num_epochs == 1
    assert recipe.learning_rate == supervised.learning_rate / 10
    assert (recipe.generations, recipe.reward) == (4, "facts")
    assert recipe.max_answer_tokens == 64  # twice the 95th percentile (60), rounded up to 32
    assert recipe.effective_batch_size % recipe.generations == 0
    assert Recipe.from_dict(recipe.to_dict()) == recipe  # a recipe the form and the worker accept
    assert "100 short questions: GRPO, one pass at learning rate 5e-05" in choice.reason
    assert "up to 64 tokens" in choice.reason and "reward 'facts'" in choice.reason


def test_grpo_on_a_few_short_labels_counts_only_the_label_as_right():
    grpo = Recipe(objective="grpo")
    choice = auto_recipe(_questions(answer_tokens_p95=2, answer_tokens_max=3, distinct_answers=3), base=grpo)
    assert choice.recipe.reward == "exact"
    assert choice.recipe.max_answer_tokens == 32  # the shortest allowance
    assert "3 different short answers" in choice.reason and "reward 'exact'" in choice.reason
    # Short answers that all differ are facts, not labels.
    facts = auto_recipe(_questions(answer_tokens_p95=2, answer_tokens_max=3, distinct_answers=90), base=grpo)
    assert facts.recipe.reward == "facts"


def test_grpo_answer_allowance_is_bounded_and_falls_back_when_answers_were_not_counted():
    long_answers = _questions(answer_tokens_p95=900, answer_tokens_max=3000, distinct_answers=100)
    assert auto_recipe(long_answers, base=Recipe(objective="grpo")).recipe.max_answer_tokens == 1024
    uncounted = auto_recipe(_questions(), base=Recipe(objective="grpo")).recipe  # a version from before
    assert (uncounted.max_answer_tokens, uncounted.reward) == (Recipe().max_answer_tokens, "facts")


def test_every_data_size_gets_a_grpo_batch_its_answers_divide():
    for rows in (20, 150, 800, 6000):
        shape = DatasetShape(rows=rows, mean_tokens=300, max_tokens=900, answer_tokens_max=40)
        recipe = auto_recipe(shape, base=Recipe(objective="grpo")).recipe
        assert recipe.effective_batch_size % recipe.generations == 0, rows
        Recipe.from_dict(recipe.to_dict())


def test_preference_pairs_get_dpo_even_when_grpo_is_asked_for():
    shape = DatasetShape(rows=100, mean_tokens=80, max_tokens=150, pairs=True)
    assert auto_recipe(shape, base=Recipe(objective="grpo")).recipe.objective == "dpo"


def test_a_start_adapters_held_out_verdict_says_whether_grpo_has_anything_to_reinforce():
    rarely = start_adapter_note("clinic-sft", 2, 24)
    assert rarely.startswith("clinic-sft answered 2 of 24 held-out questions right after its training.")
    assert "little to reinforce" in rarely and "train a supervised adapter" in rarely
    assert "little left to sharpen" in start_adapter_note("policy-sft", 19, 20)
    assert "GRPO has answers to reinforce" in start_adapter_note("policy-sft", 14, 20)
