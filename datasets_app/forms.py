from django import forms

from datasets_app.models import FileRole

MAPPING_TARGETS = [
    ("", "— ignore —"),
    ("instruction", "instruction (the question or task)"),
    ("input", "input (extra context, optional)"),
    ("output", "output (the answer)"),
    ("system", "system (instructions for the model)"),
    ("history", "history (earlier turns)"),
    ("messages", "messages (OpenAI chat list)"),
    ("conversations", "conversations (ShareGPT list)"),
    ("prompt", "prompt"),
    ("completion", "completion"),
]


class UploadForm(forms.Form):
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file's name.")
    file = forms.FileField(help_text=".jsonl, .json (an array of objects), or either gzipped (.gz).")
    role = forms.ChoiceField(choices=FileRole.choices, initial=FileRole.TRAIN, required=False)


class FieldMappingForm(forms.Form):
    """One select per key found in the file: which standard field it means."""

    def __init__(self, *args, keys: list[str], initial_mapping: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keys = keys
        for index, key in enumerate(keys):
            self.fields[f"map_{index}"] = forms.ChoiceField(
                label=key,
                choices=MAPPING_TARGETS,
                required=False,
                initial=(initial_mapping or {}).get(key, ""),
            )

    def mapping(self) -> dict[str, str]:
        return {
            key: self.cleaned_data[f"map_{index}"]
            for index, key in enumerate(self.keys)
            if self.cleaned_data.get(f"map_{index}")
        }


class ValidationSplitForm(forms.Form):
    validation_mode = forms.ChoiceField(
        choices=[("split", "Hold out a random share"), ("file", "Use an uploaded validation file")],
        initial="split",
    )
    validation_share = forms.FloatField(
        min_value=0.0, max_value=0.5, initial=0.1, help_text="Share of rows kept aside to measure progress."
    )
    split_seed = forms.IntegerField(initial=42, help_text="The same seed gives the same split.")
    validation_file = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, choices=[])

    def __init__(self, *args, validation_files=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["validation_file"].choices = [("", "—")] + [
            (f.pk, f"{f.original_name} ({f.valid_rows} rows)") for f in validation_files
        ]

    def clean(self):
        data = super().clean()
        if data.get("validation_mode") == "file" and not data.get("validation_file"):
            self.add_error("validation_file", "Pick a validation file, or hold out a share instead.")
        return data

    def validation(self) -> dict:
        data = self.cleaned_data
        if data["validation_mode"] == "file":
            return {"mode": "file", "file_id": data["validation_file"]}
        return {"mode": "split", "share": data["validation_share"], "seed": data["split_seed"]}
