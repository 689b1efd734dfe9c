from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from models_app.forms import ModelRegistrationForm
from models_app.selectors import adapter_list_for_user, base_model_list_by_size
from models_app.services import ModelRegistrationError, base_model_register


@login_required
def model_list(request: HttpRequest) -> HttpResponse:
    form = ModelRegistrationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = base_model_register(
                owner=request.user, hf_id=form.cleaned_data["hf_id"], local_dir=form.cleaned_data["local_dir"]
            )
        except ModelRegistrationError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{model.display_name} can now be picked for fine-tuning.")
            return redirect("model_list")
    return render(
        request,
        "models_app/model_list.html",
        {
            "base_models": base_model_list_by_size(request.user),
            "adapters": adapter_list_for_user(request.user).select_related("base_model", "job"),
            "form": form,
        },
    )
