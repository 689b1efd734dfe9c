from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.forms import ApiTokenForm, SignupForm
from accounts.selectors import api_token_list_for_user, signup_enabled
from accounts.services import api_token_create, api_token_revoke


def signup(request: HttpRequest) -> HttpResponse:
    if not signup_enabled():
        raise Http404("Sign-up is turned off on this site. Ask an administrator for an account.")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        messages.success(request, "Welcome! Start by uploading a dataset.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        _, new_token = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
        )
        form = ApiTokenForm()
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": api_token_list_for_user(request.user),
            "new_token": new_token,
            "default_rate_limit": settings.LATHE_GATEWAY_RATE_LIMIT,
        },
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = api_token_revoke(user=request.user, token_id=token_id)
    messages.info(request, f"Key '{token.name}' is revoked; scripts using it now get 401.")
    return redirect("token_list")
