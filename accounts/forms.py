from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False, help_text="Optional. Only used to reach you.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. 'upload script'.")
    rate_limit_per_minute = forms.IntegerField(
        required=False,
        min_value=1,
        label="Requests per minute",
        help_text="For calls to deployed models. Empty uses your own limit (all your keys share it); "
        "a number can only lower it for this key.",
    )


class InvitationForm(forms.Form):
    note = forms.CharField(
        max_length=200, required=False, help_text="Whom it is for (only you and other admins see it)."
    )
