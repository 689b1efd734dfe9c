from django import forms

from evals_app.models import EvalSplit
from evals_app.services import EvaluationRefused, judge_url_check


class EvaluationForm(forms.Form):
    """What an evaluation asks: which data, how to generate, and an optional LLM judge."""

    dataset_version = forms.TypedChoiceField(coerce=int, label="Evaluate on")
    split = forms.ChoiceField(choices=EvalSplit.choices, initial=EvalSplit.VALIDATION, label="Rows")
    max_rows = forms.IntegerField(
        min_value=1, max_value=100_000, initial=200, help_text="At most this many prompts, in file order."
    )
    compare_with_base = forms.BooleanField(
        required=False,
        initial=True,
        help_text="Ask the base model the same prompts, to see what fine-tuning changed.",
    )
    baseline = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label="Compare with",
        help_text=(
            "What the other side of the comparison is: the base model, or another of your adapters of the "
            "same base (for a DPO run, the supervised adapter it started from)."
        ),
    )
    general_skills = forms.BooleanField(
        required=False,
        initial=True,
        label="Check general skills",
        help_text=(
            "Also ask 48 everyday questions unrelated to your data (arithmetic, facts, following a format, "
            "reading, reasoning, units; English and Chinese), to see whether fine-tuning made the model "
            "forget what it knew. A minute or so more."
        ),
    )
    max_tokens = forms.IntegerField(
        min_value=1, max_value=8192, initial=256, help_text="The longest answer, in tokens."
    )
    temperature = forms.FloatField(
        min_value=0.0, max_value=2.0, initial=0.0, help_text="0 is greedy: the same answer every time."
    )
    top_p = forms.FloatField(min_value=0.01, max_value=1.0, initial=1.0)
    seed = forms.IntegerField(
        required=False, initial=0, help_text="For sampling when temperature is above 0."
    )
    # Not a URLField: the address is checked the way it will be called (lathe_common/outbound.py), with words
    # that say what is wrong with it.
    judge_base_url = forms.CharField(
        required=False,
        max_length=500,
        label="LLM judge: endpoint",
        help_text="Optional. Any OpenAI-compatible /v1 address on the internet, e.g. https://api.openai.com/v1.",
    )
    judge_model = forms.CharField(required=False, max_length=200, label="LLM judge: model")
    judge_api_key = forms.CharField(
        required=False,
        max_length=300,
        widget=forms.PasswordInput(render_value=False),
        label="LLM judge: API key",
        help_text="Used for this evaluation only and forgotten when it ends.",
    )
    judge_rubric = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="LLM judge: rubric",
        help_text="What a good answer does, in your words (e.g. “cites the right statute; invents nothing”).",
    )

    def __init__(self, *args, versions=(), baselines=(), baseline_initial=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._baselines = {adapter.pk: adapter for adapter in baselines}
        self.fields["baseline"].choices = [("", "The base model")] + [
            (adapter.pk, f"Adapter {adapter.name}") for adapter in baselines
        ]
        self.fields["baseline"].initial = baseline_initial
        if not baselines:
            del self.fields["baseline"]
        self.fields["dataset_version"].choices = [
            (
                version.pk,
                f"{version.dataset.name} · version {version.number} "
                f"({version.validation_rows} validation rows)",
            )
            for version in versions
        ]

    def clean_judge_base_url(self) -> str:
        url = self.cleaned_data.get("judge_base_url", "").strip()
        if not url:
            return ""
        try:
            return judge_url_check(url)
        except EvaluationRefused as refused:
            raise forms.ValidationError(refused.message) from refused

    def clean(self):
        data = super().clean()
        judge_fields = ("judge_base_url", "judge_model", "judge_rubric")
        # Given, even where refused (an address that is checked on its own): the raw values count.
        given = [name for name in judge_fields if str(self[name].value() or "").strip()]
        if given and len(given) < len(judge_fields):
            raise forms.ValidationError("For an LLM judge, give its endpoint, its model and your rubric.")
        return data

    def judge(self) -> dict | None:
        if not self.cleaned_data.get("judge_base_url"):
            return None
        return {
            "base_url": self.cleaned_data["judge_base_url"],
            "model": self.cleaned_data["judge_model"],
            "rubric": self.cleaned_data["judge_rubric"],
        }

    def baseline_adapter(self):
        """The adapter picked to compare with (only those offered pass the field); None: the base model."""
        return self._baselines.get(self.cleaned_data.get("baseline"))

    def generation_settings(self) -> dict:
        names = ("max_rows", "max_tokens", "temperature", "top_p", "seed", "general_skills")
        return {name: self.cleaned_data.get(name) for name in names}
