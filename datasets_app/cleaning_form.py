"""The cleaning settings form: every rule can be switched and tuned, with a line of help."""

from __future__ import annotations

from django import forms

from datasets_app.core.cleaning import CleaningRules
from models_app.models import BaseModel

# The defaults live with the rules themselves (one source of truth).
DEFAULT_RULES = CleaningRules().to_dict()
FORM_RULES = (
    "exact_dedup",
    "exact_normalize",
    "near_dedup",
    "near_threshold",
    "garbled",
    "ads",
    "repeated_char_run",
    "min_chars",
    "max_chars",
    "length_mode",
    "max_seq_len",
    "pii_mask",
)


class CleaningForm(forms.Form):
    exact_dedup = forms.BooleanField(required=False, label="Remove exact duplicates")
    exact_normalize = forms.BooleanField(
        required=False,
        label="…ignoring spaces and upper/lower case",
        help_text="'Hello  World' = 'hello world'.",
    )
    near_dedup = forms.BooleanField(required=False, label="Remove near duplicates")
    near_threshold = forms.FloatField(
        required=False,
        min_value=0.5,
        max_value=0.99,
        label="Near-duplicate similarity",
        help_text="0.85 removes rows that share about 85% of their wording. Lower removes more.",
    )
    garbled = forms.BooleanField(
        required=False,
        label="Remove garbled text",
        help_text="Broken characters (�, 锟斤拷, Ã©) and control codes.",
    )
    ads = forms.BooleanField(
        required=False,
        label="Remove ads and spam",
        help_text="Links, phone numbers, 'contact me'/加微信 and long runs of one repeated character.",
    )
    repeated_char_run = forms.IntegerField(
        required=False,
        min_value=3,
        max_value=10000,
        label="…or one character repeated this many times",
        help_text="'哈哈哈哈哈哈哈哈哈哈' or '!!!!!!!!!!' counts as spam from 10 in a row.",
    )
    # The bounds are CleaningRules' own, so the form refuses what a job would.
    min_chars = forms.IntegerField(
        min_value=0, max_value=10_000_000, required=False, label="Shortest row (characters)"
    )
    max_chars = forms.IntegerField(
        min_value=1, max_value=100_000_000, required=False, label="Longest row (characters)"
    )
    length_mode = forms.ChoiceField(
        choices=[
            ("off", "Keep long rows"),
            ("drop", "Drop rows that are too long"),
            ("truncate", "Shorten the last answer to fit"),
            ("split", "Split long conversations into parts"),
        ],
        label="Rows longer than the limit",
    )
    max_seq_len = forms.IntegerField(
        required=False,
        min_value=16,
        max_value=131072,
        label="Length limit (tokens)",
        help_text="The guide trains with 2,048 tokens; longer rows cost memory and may not fit.",
    )
    base_model = forms.ModelChoiceField(
        queryset=BaseModel.objects.none(),
        required=False,
        label="Count tokens with",
        help_text="Each model splits text into tokens its own way.",
    )
    pii_mask = forms.BooleanField(
        required=False,
        label="Mask personal data",
        help_text="Emails, phone numbers and ID numbers become [EMAIL]…",
    )

    def __init__(self, *args, initial_rules: dict | None = None, base_models=None, **kwargs):
        kwargs.setdefault("initial", {**DEFAULT_RULES, **(initial_rules or {})})
        super().__init__(*args, **kwargs)
        if base_models is not None:
            self.fields["base_model"].queryset = base_models
            self.fields["base_model"].initial = base_models.first()

    def clean(self) -> dict:
        data = super().clean()
        shortest, longest = data.get("min_chars") or 0, data.get("max_chars")
        if longest is not None and longest < shortest:
            self.add_error("max_chars", f"The longest row can't be shorter than the shortest ({shortest:,}).")
        return data

    def rules(self) -> dict:
        data = self.cleaned_data
        rules = {name: data.get(name) for name in FORM_RULES}
        # A number left blank means "the default", except max_chars where blank means "no limit".
        for name in ("near_threshold", "repeated_char_run", "max_seq_len"):
            if rules[name] is None:
                rules[name] = DEFAULT_RULES[name]
        return rules | {"min_chars": data.get("min_chars") or 0}
