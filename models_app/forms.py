from django import forms


class ModelRegistrationForm(forms.Form):
    hf_id = forms.CharField(
        required=False,
        label="Hugging Face id",
        help_text="e.g. Qwen/Qwen2.5-7B-Instruct. The worker downloads it the first time a job needs it.",
    )
    local_dir = forms.CharField(
        required=False,
        label="…or a folder on the server (administrators)",
        help_text="Absolute path of a model folder with config.json, readable by the workers.",
    )

    def clean(self):
        data = super().clean()
        if not data.get("hf_id") and not data.get("local_dir"):
            raise forms.ValidationError("Give a Hugging Face id or a folder.")
        return data
