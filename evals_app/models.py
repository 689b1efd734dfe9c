from django.conf import settings
from django.db import models

# What an evaluation job is about (Job.subject_type): the one spelling.
SUBJECT_EVALUATION = "evaluation"

# The labels answers and scores are kept under: the fine-tuned candidate and its base on the same prompts.
LABEL_TUNED = "tuned"
LABEL_BASE = "base"


def candidate_base_model(adapter, model):
    """The base model a candidate was fine-tuned from: an adapter's base, or the base of the adapter a
    merged model was made from; None for a base model evaluated on its own."""
    if adapter is not None:
        return adapter.base_model
    if model is not None and model.merged_from_id:
        return model.merged_from.base_model
    return None


class EvalSplit(models.TextChoices):
    VALIDATION = "validation", "Its validation split (rows never trained on)"
    ALL = "all", "Every row (a version uploaded as an evaluation set)"


class Evaluation(models.Model):
    """One model answering a dataset version's prompts, scored against the references (and its base too).

    The candidate is an adapter (served on its base model) or a model of the registry (a merged model,
    or a base model on its own). Answers and per-example scores live in EvaluationExample rows.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="evaluations")
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluation"
    )
    adapter = models.ForeignKey(
        "models_app.Adapter", null=True, blank=True, on_delete=models.CASCADE, related_name="evaluations"
    )
    model = models.ForeignKey(
        "models_app.BaseModel", null=True, blank=True, on_delete=models.CASCADE, related_name="evaluations"
    )
    dataset_version = models.ForeignKey(
        "datasets_app.DatasetVersion", on_delete=models.CASCADE, related_name="evaluations"
    )
    split = models.CharField(max_length=16, choices=EvalSplit.choices, default=EvalSplit.VALIDATION)
    compare_with_base = models.BooleanField(default=True)
    # What the candidate is compared with, when not its base model: another of the user's adapters on the
    # same base (a DPO adapter against the supervised adapter it started from). Its name is also kept in
    # settings["baseline_name"], so a deleted baseline's results still say what they were compared with.
    baseline_adapter = models.ForeignKey(
        "models_app.Adapter",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="baseline_evaluations",
    )
    # Generation settings (max_tokens, temperature, top_p, seed, max_rows, concurrency) and the judge's
    # endpoint and rubric. A judge's API key is kept in `judge_api_key` only until the job ends.
    settings = models.JSONField(default=dict, blank=True)
    judge_api_key = models.CharField(max_length=300, blank=True)
    language = models.CharField(max_length=8, blank=True)
    tokenization = models.CharField(max_length=300, blank=True)
    generation_note = models.CharField(max_length=300, blank=True)
    # {label: {metric: {"value", "low", "high"}}} and {metric: {label: {"mean", "low", "high", ...}}}
    scores = models.JSONField(null=True, blank=True)
    differences = models.JSONField(null=True, blank=True)
    # {"rougeL": summary, "judge": summary}: the tuned side's win rate against the baseline, decided by
    # ROUGE-L against the reference and, with a judge, by the judge (evals_app/core/pairwise.py).
    win_rate = models.JSONField(null=True, blank=True)
    # The general skills check (evals_app/core/general_skills.py exam_report): each model's right answers
    # to 48 everyday questions, by skill, and whether the candidate lost some its baseline knew.
    general_skills = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Evaluation {self.pk} of {self.candidate_label}"

    @property
    def candidate_label(self) -> str:
        if self.adapter_id:
            return self.adapter.name
        return self.model.display_name if self.model_id else "a deleted model"

    @property
    def base_label(self) -> str:
        if self.settings.get("baseline_name"):
            return self.settings["baseline_name"]
        base = candidate_base_model(self.adapter, self.model)
        return base.display_name if base is not None else ""


class EvaluationExample(models.Model):
    """One prompt of an evaluation: its reference, each model's answer and scores, and the change."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="examples")
    position = models.PositiveIntegerField()
    source_line = models.PositiveIntegerField(null=True, blank=True)
    messages = models.JSONField(default=list)  # the prompt: the conversation before the reference answer
    reference = models.TextField()
    answers = models.JSONField(default=dict)  # {label: text}
    errors = models.JSONField(default=dict, blank=True)  # {label: why there is no answer}
    scores = models.JSONField(default=dict)  # {label: {metric: value}}
    judge = models.JSONField(default=dict, blank=True)  # {label: {"score", "reason"}}
    # Which answer was better: {"by": "rougeL" | "judge", "score": 0-1 for the tuned side, "outcome":
    # "win" | "tie" | "loss", and with a judge "consistent" (both orders agreed) and "reason"}.
    comparison = models.JSONField(default=dict, blank=True)
    # The tuned answer's ROUGE-L minus the base answer's, for sorting by how much fine-tuning changed it.
    delta = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["evaluation", "position"], name="unique_evaluation_position")
        ]

    def __str__(self) -> str:
        return f"example {self.position} of evaluation {self.evaluation_id}"

    @property
    def prompt_text(self) -> str:
        turns = [m for m in self.messages if m.get("role") != "system"]
        return turns[-1]["content"] if turns else ""
