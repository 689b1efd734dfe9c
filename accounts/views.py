from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required, user_passes_test
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.audit_export import audit_csv
from accounts.forms import ApiTokenForm, InvitationForm, SignupForm
from accounts.models import AuditAction, Invitation
from accounts.quotas import QuotaExceeded, quota_for
from accounts.selectors import (
    api_token_list_for_user,
    audit_entries_visible_to,
    invitation_find_usable,
    signup_enabled,
)
from accounts.services import (
    InvitationRefused,
    api_token_create,
    api_token_revoke,
    invitation_create,
    signup_complete,
)


def signup(request: HttpRequest) -> HttpResponse:
    """Open sign-up, or an invitation link (`?invitation=<token>`) while sign-up is closed."""
    invitation = request.GET.get("invitation") or request.POST.get("invitation") or ""
    if not signup_enabled() and invitation_find_usable(invitation) is None:
        reason = (
            "This invitation link was already used or has expired. Ask your administrator for a new one."
            if invitation
            else "Sign-up is closed on this site. Ask your administrator for an invitation."
        )
        return render(request, "registration/signup_closed.html", {"reason": reason}, status=404)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = signup_complete(form=form, invitation="" if signup_enabled() else invitation)
        except InvitationRefused as refused:
            form.add_error(None, refused.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome! Start by uploading a dataset.")
            return redirect("home")
    return render(request, "registration/signup.html", {"form": form, "invitation": invitation})


def login_locked_out(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """django-axes' answer to a locked-out user name and address (AXES_LOCKOUT_CALLABLE)."""
    cooloff = settings.AXES_COOLOFF_TIME
    context = {
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": int(cooloff.total_seconds() // 60),
        "retry_at": timezone.now() + cooloff,
    }
    return render(request, "registration/locked_out.html", context, status=429)


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    new_token = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_token = api_token_create(
                user=request.user,
                name=form.cleaned_data["name"],
                rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
            )
        except QuotaExceeded as exceeded:
            form.add_error(None, exceeded.message)
        else:
            form = ApiTokenForm()
    return render(
        request,
        "accounts/tokens.html",
        {
            "form": form,
            "tokens": api_token_list_for_user(request.user),
            "new_token": new_token,
            "quota": quota_for(request.user),
        },
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = api_token_revoke(user=request.user, token_id=token_id)
    messages.info(request, f"Key '{token.name}' is revoked; scripts using it now get 401.")
    return redirect("token_list")


@user_passes_test(lambda user: user.is_active and user.is_staff)
def invitation_list(request: HttpRequest) -> HttpResponse:
    """Administrators make one-time sign-up links here; a link is shown once, when it is made."""
    form = InvitationForm(request.POST or None)
    new_link = None
    if request.method == "POST" and form.is_valid():
        _, plaintext = invitation_create(created_by=request.user, note=form.cleaned_data["note"])
        new_link = request.build_absolute_uri(f"{reverse('signup')}?invitation={plaintext}")
        form = InvitationForm()
    return render(
        request,
        "accounts/invitations.html",
        {
            "form": form,
            "new_link": new_link,
            "invitations": Invitation.objects.select_related("used_by")[:50],
            "days": settings.LATHE_INVITATION_DAYS,
            "now": timezone.now(),
        },
    )


@login_required
def activity(request: HttpRequest) -> HttpResponse:
    """The audit log: your own doings; an administrator sees everyone's, and may download them as CSV."""
    who = request.GET.get("who", "").strip()
    action = request.GET.get("action", "")
    entries = audit_entries_visible_to(request.user, who=who, action=action)
    if request.GET.get("format") == "csv" and request.user.is_staff:
        response = StreamingHttpResponse(audit_csv(entries), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="lathe-activity.csv"'
        return response
    page = Paginator(entries.select_related("actor"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "accounts/activity.html",
        {"page": page, "who": who, "action": action, "actions": AuditAction.choices},
    )
