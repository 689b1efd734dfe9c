"""The recipe: defaults from the guide, readable validation errors, YAML export."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training_app.ml.errors import TrainingNotRunnable
from training_app.ml.recipe import RECIPE_HELP, Recipe, RecipeError, load_plain_yaml


def test_it_defaults_to_the_guides_lora_recipe():
    recipe = Recipe()
    assert (recipe.method, recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout) == ("lora", 64, 16, 0.1)
    assert recipe.target_module_list == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert (recipe.learning_rate, recipe.num_epochs, recipe.batch_size, recipe.grad_accum) == (2e-4, 3, 1, 8)
    assert (recipe.max_seq_len, recipe.warmup_ratio, recipe.logging_steps) == (2048, 0.1, 1)
    assert recipe.max_steps is None and recipe.trial_rows is None


def test_it_explains_every_setting():
    assert set(RECIPE_HELP) == set(Recipe().to_dict())
    assert all(text.strip() for text in RECIPE_HELP.values())


def test_it_round_trips_through_yaml():
    recipe = Recipe(method="ia3", target_modules="q_proj, v_proj,down_proj", max_steps=10, learning_rate=3e-5)
    text = recipe.to_yaml()
    assert "# " + RECIPE_HELP["lora_r"] in text
    assert Recipe.from_yaml(text) == recipe
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_it_expands_target_module_presets():
    assert Recipe(target_modules="all_linear").target_module_list == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]
    assert Recipe(target_modules=["q_proj", "v_proj"]).target_modules == "q_proj,v_proj"


def test_it_accepts_form_strings():
    recipe = Recipe.from_dict({"learning_rate": "5e-5", "lora_r": "16", "use_dora": "true", "max_steps": ""})
    assert (recipe.learning_rate, recipe.lora_r, recipe.use_dora, recipe.max_steps) == (5e-5, 16, True, None)


def test_it_gives_readable_errors_for_invalid_values():
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict(
            {
                "method": "full",
                "lora_r": 0,
                "learning_rate": "fast",
                "lora_dropout": 1.5,
                "batch_size": 2.5,
                "target_modules": "q_proj; rm -rf",
            }
        )
    errors = caught.value.errors
    assert errors["method"] == "must be one of lora, qlora, ia3; got 'full'."
    assert errors["lora_r"] == "must be between 1 and 512; got 0."
    assert errors["learning_rate"] == "must be a number (like 0.1 or 2e-4), not 'fast'."
    assert errors["lora_dropout"] == "must be at least 0 and less than 1; got 1.5."
    assert errors["batch_size"] == "must be a whole number, not 2.5."
    assert "q_proj; rm -rf" in errors["target_modules"]
    assert isinstance(caught.value, ValueError) and "lora_r: must be between 1 and 512" in str(caught.value)


def test_it_names_unknown_settings():
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict({"colour": "blue", "lora_r": 8})
    assert caught.value.errors == {"colour": "is not a setting Lathe knows."}


def test_it_refuses_lora_options_with_ia3():
    with pytest.raises(RecipeError, match="DoRA and rsLoRA are LoRA options"):
        Recipe(method="ia3", use_dora=True)


def test_it_resolves_auto_settings_for_the_device():
    recipe = Recipe()
    assert recipe.resolve_precision("cpu", bf16_supported=False) == "fp32"
    assert recipe.resolve_precision("cpu", bf16_supported=True) == "bf16"  # AVX512-BF16 or AMX
    assert recipe.resolve_precision("cuda", bf16_supported=True) == "bf16"
    assert recipe.resolve_precision("cuda:0", bf16_supported=False) == "fp16"
    assert recipe.resolve_gradient_checkpointing("cpu", checkpointing_needed=True) is False
    assert recipe.resolve_gradient_checkpointing("cuda", checkpointing_needed=True) is True
    assert recipe.resolve_gradient_checkpointing("cuda", checkpointing_needed=False) is False
    assert Recipe(gradient_checkpointing="on").resolve_gradient_checkpointing(
        "cpu", checkpointing_needed=False
    )


def test_it_refuses_qlora_and_half_precision_without_a_gpu(monkeypatch):
    import lathe_common.cpu

    with pytest.raises(TrainingNotRunnable, match="QLoRA needs an NVIDIA GPU") as caught:
        Recipe(method="qlora").check_runnable("cpu")
    assert "Choose LoRA" in caught.value.hint
    with pytest.raises(TrainingNotRunnable, match="fp16 needs a GPU"):
        Recipe(precision="fp16").check_runnable("cpu")
    monkeypatch.setattr(lathe_common.cpu, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(TrainingNotRunnable, match="bf16 needs a GPU or a CPU with bf16 instructions"):
        Recipe(precision="bf16").check_runnable("cpu")
    assert Recipe().resolve_precision("cpu") == "fp32"
    Recipe().check_runnable("cpu")
    monkeypatch.setattr(lathe_common.cpu, "cpu_has_native_bf16", lambda: True)
    Recipe(precision="bf16").check_runnable("cpu")
    assert Recipe().resolve_precision("cpu") == "bf16"


def test_it_replaces_settings_with_validation():
    recipe = Recipe().replace(max_seq_len=1024, gradient_checkpointing="on")
    assert (recipe.max_seq_len, recipe.gradient_checkpointing) == (1024, "on")
    with pytest.raises(RecipeError):
        Recipe().replace(max_seq_len=1)


BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "recipe: {learning_rate: *h}\n"
)


@pytest.mark.parametrize(
    "text, words",
    [
        (BILLION_LAUGHS, "anchor (&name) or an alias (*name)"),
        ("recipe: {method: &m lora, lora_r: 8}\n", "line 1: uses an anchor"),
        ("[" * 100_000, "nested more than 16 levels deep"),
        ("recipe: {lora_r: " + "9" * 6000 + "}\n", "a value Lathe can't read"),
        ("!!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
        ("recipe: [1, 2\n", "not a plain YAML recipe"),
    ],
)
def test_it_refuses_yaml_that_could_blow_up_or_run_code(text, words):
    with pytest.raises(RecipeError) as caught:
        Recipe.from_yaml(text)
    assert words in caught.value.errors["recipe"]
    assert len(caught.value.errors["recipe"]) < 500


def test_it_refuses_a_list_or_a_mapping_where_one_value_goes():
    with pytest.raises(RecipeError) as caught:
        Recipe.from_yaml(
            "learning_rate: [0.1, 0.2]\nmethod: {name: lora}\ntarget_modules: [q_proj, {a: 1}]\n"
        )
    assert caught.value.errors == {
        "method": "must be one value (a number, a word or true/false), not a list.",
        "target_modules": "must be module names (words like q_proj), one per item of the list.",
        "learning_rate": "must be one value (a number, a word or true/false), not a list.",
    }
    assert Recipe.from_yaml("target_modules: [q_proj, v_proj]\n").target_modules == "q_proj,v_proj"


def test_it_quotes_a_long_bad_value_briefly():
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict({"method": "x" * 100_000})
    assert len(caught.value.errors["method"]) < 200


def test_a_number_past_any_float_is_a_readable_error():
    with pytest.raises(RecipeError) as caught:
        Recipe.from_dict({"num_epochs": 10**400, "learning_rate": -(10**400)})
    assert set(caught.value.errors) == {"num_epochs", "learning_rate"}


@settings(max_examples=200, deadline=None, database=None)
@given(
    data=st.dictionaries(
        st.sampled_from(sorted(Recipe().to_dict())) | st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=10,
        ),
        max_size=6,
    )
)
def test_any_settings_give_a_recipe_or_a_recipe_error(data):
    try:
        recipe = Recipe.from_dict(data)
    except RecipeError as error:
        assert error.errors and all(isinstance(message, str) for message in error.errors.values())
    else:
        assert Recipe.from_yaml(recipe.to_yaml()) == recipe


@settings(max_examples=200, deadline=None, database=None)
@given(
    text=st.text(max_size=300) | st.sampled_from(["&a x", "*a", "[" * 500, "a: !!binary AAAA", "{a: 1e999}"])
)
def test_any_text_loads_as_plain_yaml_or_a_value_error(text):
    try:
        load_plain_yaml(text)
    except ValueError as error:
        assert str(error)


def test_rehearsal_is_a_share_for_supervised_runs_only():
    assert Recipe().rehearsal == 0 and Recipe(rehearsal="0.25").rehearsal == 0.25
    with pytest.raises(RecipeError) as too_much:
        Recipe(rehearsal=1.5)
    assert too_much.value.errors["rehearsal"] == "must be at least 0 and at most 1; got 1.5."
    with pytest.raises(RecipeError) as preference:
        Recipe(objective="dpo", rehearsal=0.5)
    assert "supervised runs only" in preference.value.errors["rehearsal"]
