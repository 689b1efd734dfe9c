"""The fine-tuning form: the recipe's fields, generated from the Recipe itself, each with its help line."""

from __future__ import annotations

import dataclasses

from django import forms

from training_app.ml.recipe import (
    ADAPTER_METHOD_NAMES,
    CHECKPOINTING_CHOICES,
    GPUS_CHOICES,
    METHODS,
    OBJECTIVES,
    PRECISION_CHOICES,
    PREFERENCE_LOSSES,
    RECIPE_HELP,
    REPORT_TO_CHOICES,
    REWARDS,
    SPEEDUP_CHOICES,
    Recipe,
    RecipeError,
)

OBJECTIVE_LABELS = {
    "sft": "Supervised (learn the answers)",
    "dpo": "DPO (prefer the better answer of each pair)",
    "orpo": "ORPO (learn the better answers and the preference at once; no reference copy)",
    "simpo": "SimPO (prefer the better answer, judged per word; no reference copy)",
    "kto": "KTO (learn from answers rated good or bad)",
    "grpo": "GRPO (answer each question several times; reinforce the right answers)",
}
REWARD_LABELS = {
    "facts": "facts (carries the reference answer's facts, in any words)",
    "exact": "exact (is the reference answer: labels, codes, numbers)",
}
CHOICES = {
    "objective": [(o, OBJECTIVE_LABELS[o]) for o in OBJECTIVES],
    "preference_loss": [(c, c) for c in PREFERENCE_LOSSES],
    "reward": [(r, REWARD_LABELS[r]) for r in REWARDS],
    "method": [(m, ADAPTER_METHOD_NAMES[m] + (" (4-bit, GPU only)" * (m == "qlora"))) for m in METHODS],
    "gradient_checkpointing": [(c, c) for c in CHECKPOINTING_CHOICES],
    "precision": [(c, c) for c in PRECISION_CHOICES],
    "report_to": [(c, c) for c in REPORT_TO_CHOICES],
    "gpus": [(c, "auto (as few as the model needs)" if c == "auto" else c) for c in GPUS_CHOICES],
    "target_modules": None,  # free text with presets: attention, all_linear, or names
    **{
        name: [(c, "auto (on GPUs)" if c == "auto" else c) for c in SPEEDUP_CHOICES]
        for name in ("micro_batching", "liger_kernels", "fused_optimizer")
    },
}
LABELS = {
    "gpus": "GPUs",
    "lora_r": "LoRA r",
    "liger_kernels": "Liger kernels",
    "fused_optimizer": "Fused AdamW",
    "rehearsal": "Keep general skills (rehearsal)",
    "max_answer_tokens": "Longest answer (tokens)",
}
# Shown first; the rest sit under "More settings".
MAIN_FIELDS = (
    "objective",
    "method",
    "lora_r",
    "learning_rate",
    "num_epochs",
    "max_seq_len",
    "batch_size",
    "grad_accum",
    "gpus",
    "rehearsal",
)


def _field_for(field: dataclasses.Field, default) -> forms.Field:
    label = LABELS.get(field.name) or field.name.replace("_", " ").capitalize()
    common = {"label": label, "help_text": RECIPE_HELP.get(field.name, ""), "initial": default}
    if CHOICES.get(field.name):
        return forms.ChoiceField(choices=CHOICES[field.name], **common)
    if isinstance(default, bool):
        return forms.BooleanField(required=False, **common)
    if isinstance(default, float) or field.name in {"learning_rate", "num_epochs"}:
        return forms.FloatField(**common)
    if isinstance(default, int) or default is None:
        return forms.IntegerField(required=default is not None, **common)
    return forms.CharField(**common)


class TrainingForm(forms.Form):
    base_model = forms.ModelChoiceField(queryset=None, help_text="The model to fine-tune.")
    target = forms.ChoiceField(
        required=False,
        help_text="Where it runs: any free GPU, one machine or card, or the Ray cluster where one is set up.",
    )

    def __init__(
        self, *args, base_models, targets: list[tuple[str, str]], initial_recipe: Recipe | None = None, **kw
    ):
        super().__init__(*args, **kw)
        self.fields["base_model"].queryset = base_models
        self.fields["base_model"].initial = base_models.first()
        self.fields["target"].choices = [("", "Any free GPU (or the CPU worker)")] + targets
        recipe = initial_recipe or Recipe()
        for field in dataclasses.fields(Recipe):
            self.fields[field.name] = _field_for(field, getattr(recipe, field.name))

    def add_preference_starts(self, *, adapters, sft_versions) -> None:
        """A preference version's form: continue from an adapter, or run supervised on another version
        first and go on from its adapter ("SFT then DPO")."""
        self.fields["start_adapter"] = forms.ModelChoiceField(
            queryset=adapters,
            required=False,
            empty_label="A new adapter on the base model",
            help_text="DPO works best on top of a supervised adapter of the same base model.",
        )
        self.fields["sft_version"] = forms.ChoiceField(
            choices=[("", "No: only DPO")]
            + [(str(v.pk), f"{v.dataset.name} v{v.number}") for v in sft_versions],
            required=False,
            label="Supervised run first, on",
            help_text="SFT then DPO: one run learns from these conversations with the automatic settings, "
            "and the DPO run starts from its adapter when it ends.",
        )
        self.sft_versions = {str(v.pk): v for v in sft_versions}

    def add_reinforcement_start(self, *, adapters) -> None:
        """A conversation version's form: GRPO may continue from a supervised adapter (the usual way)."""
        self.fields["start_adapter"] = forms.ModelChoiceField(
            queryset=adapters,
            required=False,
            empty_label="A new adapter on the base model",
            help_text="GRPO only: continue from a supervised adapter of the same base model, trained on "
            "these questions. GRPO reinforces answers the model already sometimes gets right, so it starts "
            "best from one.",
        )

    @property
    def reinforcement_fields(self):
        if "start_adapter" not in self.fields or "sft_version" in self.fields:
            return []
        return [self["start_adapter"]]

    @property
    def preference_fields(self):
        if "sft_version" not in self.fields:  # a conversation version's form (its adapter is GRPO's)
            return []
        return [self[name] for name in ("start_adapter", "sft_version")]

    @property
    def main_fields(self):
        return [self[name] for name in MAIN_FIELDS]

    @property
    def more_fields(self):
        return [self[f.name] for f in dataclasses.fields(Recipe) if f.name not in MAIN_FIELDS]

    def clean(self):
        data = super().clean()
        values = {f.name: data.get(f.name) for f in dataclasses.fields(Recipe) if f.name in data}
        try:
            self.recipe = Recipe.from_dict(values)
        except RecipeError as error:
            for name, message in error.errors.items():
                self.add_error(name if name in self.fields else None, message)
            return data
        problem = self.recipe.cadence_problem()
        if problem:
            self.add_error("save_steps", problem)
        if data.get("start_adapter") and self.recipe.objective == "sft":
            self.add_error(
                "start_adapter", "Supervised runs start anew: choose the objective 'grpo', or no adapter."
            )
        if data.get("start_adapter") and data.get("sft_version"):
            self.add_error("sft_version", "Either start from an adapter or run supervised first, not both.")
        return data
