"""The member-facing mall pages under /mall/ (server-rendered, mobile first).

A member is logged in by a single-use link from a partner (POST /members/{id}/mall-link) or by
their mall password; the session then holds only the member's id (SESSION_KEY), and every
query below filters by it, so a member only ever sees and acts on their own data.
"""

from __future__ import annotations

import secrets
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from campaigns.services import EventInput, record_event
from loyalty_site.exceptions import LoyaltyError
from members.models import Member
from members.selectors import member_check_in_today, member_inbox
from members.services import mark_inbox_read
from points.models import Partner
from points.selectors import member_ledger, member_points_summary
from points.services import programme_settings
from rewards_mall.exceptions import InvalidMallLink, RedemptionNotFound, TooManyLoginAttempts
from rewards_mall.forms import MallLoginForm, RedeemForm
from rewards_mall.models import Redemption, Reward
from rewards_mall.selectors import (
    Offer,
    catalogue,
    categories,
    member_price,
    member_redemption,
    member_redemptions,
    reward_by_code,
    tier_progress,
    unavailable_reason,
    units_redeemed,
)
from rewards_mall.services import (
    authenticate_mall_member,
    cancel_redemption,
    consume_mall_link,
    redeem,
)

SESSION_KEY = "mall_member_id"
# How each kind of ledger entry reads to a member.
ENTRY_LABELS = {
    "earn": gettext_lazy("Points earned"),
    "redeem": gettext_lazy("Redeemed a reward"),
    "expire": gettext_lazy("Points expired"),
    "reverse": gettext_lazy("Points returned or reversed"),
    "adjust": gettext_lazy("Adjustment"),
    "spend": gettext_lazy("Paid with points"),
    "transfer": gettext_lazy("Transfer"),
    "convert": gettext_lazy("Exchange"),
}
HISTORY_PAGE_SIZE = 20
FEATURED_ON_HOME = 4
INBOX_ON_HOME = 5


def _log_in(request: HttpRequest, member: Member) -> None:
    # A new session id at login: a session fixed before it cannot ride on the member's.
    request.session.cycle_key()
    request.session[SESSION_KEY] = member.pk


def _with_member_language(request: HttpRequest, response: HttpResponse, member: Member):
    """The member's own language, unless this browser already chose one with the switch."""
    if settings.LANGUAGE_COOKIE_NAME not in request.COOKIES:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, member.language, samesite="Lax")
    return response


def mall_member_required(view):
    """Loads the logged-in member into `request.mall_member`, or sends to the login page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        member_id = request.session.get(SESSION_KEY)
        member = None
        if member_id is not None:
            member = (
                Member.objects.select_related("tier")
                .filter(pk=member_id)
                .exclude(status=Member.Status.CLOSED)
                .first()
            )
        if member is None:
            login = reverse("rewards_mall:login")
            return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
        request.mall_member = member
        return view(request, *args, **kwargs)

    return wrapper


# --- Entering and leaving --------------------------------------------------------------------
@require_GET
def enter(request: HttpRequest, token: str) -> HttpResponse:
    """The single-use link from a partner app: logs the member in, once."""
    try:
        member = consume_mall_link(token=token)
    except InvalidMallLink as error:
        return render(request, "rewards_mall/link_invalid.html", {"error": error}, status=400)
    _log_in(request, member)
    return _with_member_language(request, redirect("rewards_mall:home"), member)


@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    form = MallLoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            member = authenticate_mall_member(
                login=form.cleaned_data["login"], password=form.cleaned_data["password"]
            )
        except TooManyLoginAttempts as refused:
            form.add_error(None, refused.message)
        else:
            if member is not None:
                _log_in(request, member)
                response = redirect(next_url or reverse("rewards_mall:home"))
                return _with_member_language(request, response, member)
            form.add_error(None, _("The member number or the password is wrong."))
    return render(request, "rewards_mall/login.html", {"form": form, "next": next_url})


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return redirect("rewards_mall:login")


# --- Pages -----------------------------------------------------------------------------------
@require_GET
@mall_member_required
def home(request: HttpRequest) -> HttpResponse:
    member = request.mall_member
    offers = catalogue(member=member)
    return render(
        request,
        "rewards_mall/home.html",
        {
            "points": member_points_summary(member=member),
            "progress": tier_progress(member=member),
            "featured": [o for o in offers if o.reward.is_featured][:FEATURED_ON_HOME],
            "recent": member_redemptions(member=member)[:3],
            "inbox": member_inbox(member=member, limit=INBOX_ON_HOME),
            "check_in": member_check_in_today(member=member, today=_programme_today()),
            "nav": "home",
        },
    )


def _programme_today():
    return timezone.now().astimezone(programme_settings().zone).date()


# Check-ins made on the mall pages are events of this partner (a system, not a merchant).
MALL_PARTNER = "Rewards mall"


@require_POST
@mall_member_required
def check_in(request: HttpRequest) -> HttpResponse:
    """Today's check-in (签到), through the same rule engine as a partner's check_in event: the
    programme's check-in rules, streak rewards and tasks apply, once a day."""
    member = request.mall_member
    partner, _created = Partner.objects.get_or_create(
        name=MALL_PARTNER, defaults={"kind": Partner.Kind.SYSTEM}
    )
    try:
        # Its own transaction (a savepoint inside another): a refusal undoes all of it.
        with transaction.atomic():
            outcome = record_event(
                partner=partner, data=EventInput(type="check_in", member=member.external_id)
            )
    except LoyaltyError as error:
        messages.info(request, error.message)
    else:
        streak = member_check_in_today(member=member, today=_programme_today())["streak"]
        messages.success(
            request,
            _("Checked in: %(points)s points, %(days)s days in a row.")
            % {"points": outcome.points_awarded, "days": streak},
        )
    return redirect(reverse("rewards_mall:home"))


@require_POST
@mall_member_required
def inbox_read(request: HttpRequest) -> HttpResponse:
    """Mark the member's messages read: one (`message`) or all of them."""
    message_id = request.POST.get("message")
    ids = [int(message_id)] if message_id and message_id.isdigit() else None
    mark_inbox_read(member=request.mall_member, message_ids=ids)
    return redirect(f"{reverse('rewards_mall:home')}#inbox")


@require_GET
@mall_member_required
def reward_list(request: HttpRequest) -> HttpResponse:
    member = request.mall_member
    category = request.GET.get("category") or None
    affordable = request.GET.get("affordable") == "1"
    available = member_points_summary(member=member)["available"]
    offers = catalogue(
        member=member, category=category, affordable_points=available if affordable else None
    )
    return render(
        request,
        "rewards_mall/reward_list.html",
        {
            "offers": offers,
            "categories": categories(),
            "category": category,
            "affordable": affordable,
            "available": available,
            "nav": "rewards",
        },
    )


def _offer_or_404(member: Member, code: str) -> Offer:
    reward = reward_by_code(code=code)
    if reward is None or not reward.is_active:
        raise Http404(_("No such reward."))
    return Offer(
        reward=reward,
        price=member_price(reward=reward, member=member),
        unavailable=unavailable_reason(reward=reward, member=member),
    )


def _refusal(offer: Offer, member: Member, available: int) -> str | None:
    """Why the member cannot redeem this now, in words; None when they can."""
    reward = offer.reward
    if offer.unavailable == "tier":
        return _("This reward is for members of other tiers.")
    if offer.unavailable == "not_yet":
        return _("This reward is not available yet.")
    if offer.unavailable is not None:
        return _("This reward is no longer available.")
    if reward.stock <= 0:
        return _("Sorry, this reward is out of stock.")
    limit = reward.per_member_limit
    if limit is not None and units_redeemed(reward_id=reward.pk, member_id=member.pk) >= limit:
        return _("You have reached the limit for this reward (%(limit)d per member).") % {
            "limit": reward.per_member_limit
        }
    if offer.price.points > available:
        return _("Not enough points: you need %(needed)d more.") % {
            "needed": offer.price.points - available
        }
    return None


@require_GET
@mall_member_required
def reward_detail(request: HttpRequest, code: str) -> HttpResponse:
    member = request.mall_member
    offer = _offer_or_404(member, code)
    available = member_points_summary(member=member)["available"]
    return render(
        request,
        "rewards_mall/reward_detail.html",
        {
            "offer": offer,
            "available": available,
            "refusal": _refusal(offer, member, available),
            "nav": "rewards",
        },
    )


def _redeem_error_message(error: LoyaltyError) -> str:
    if error.code == "out_of_stock":
        return _("Sorry, this reward is out of stock.")
    if error.code == "insufficient_points":
        return _("Not enough points: this needs %(needed)s points and you have %(available)s.") % {
            "needed": error.data.get("requested"),
            "available": error.data.get("available"),
        }
    if error.code == "limit_exceeded":
        return _("You have reached the limit for this reward (%(limit)s per member).") % {
            "limit": error.data.get("limit")
        }
    if error.code == "reward_unavailable":
        return _("This reward is not available to you right now.")
    if error.code == "member_frozen":
        return _("Your points are frozen; please contact customer service.")
    return error.message


@require_http_methods(["GET", "POST"])
@mall_member_required
def redeem_confirm(request: HttpRequest, code: str) -> HttpResponse:
    """The confirmation step: what it costs, the balance after, an address for goods."""
    member = request.mall_member
    offer = _offer_or_404(member, code)
    reward = offer.reward
    available = member_points_summary(member=member)["available"]
    form = RedeemForm(
        request.POST or None,
        needs_address=reward.needs_address,
        initial={
            "token": secrets.token_urlsafe(16),
            "recipient": member.name,
            "phone": member.phone,
        },
    )
    error = None
    if request.method == "POST" and form.is_valid():
        try:
            redemption = redeem(
                member=member,
                reward_code=reward.code,
                quantity=form.cleaned_data["quantity"],
                shipping_address=form.shipping_address(),
                channel=Redemption.Channel.MALL,
                request_token=form.cleaned_data["token"],
            )
        except LoyaltyError as refused:
            error = _redeem_error_message(refused)
        else:
            messages.success(request, _("Redeemed! Your order is placed."))
            return redirect("rewards_mall:redemption", pk=redemption.pk)
    quantity = form.cleaned_data.get("quantity", 1) if form.is_bound and form.is_valid() else 1
    total = offer.price.times(quantity)
    return render(
        request,
        "rewards_mall/redeem_confirm.html",
        {
            "offer": offer,
            "form": form,
            "error": error,
            "available": available,
            "total": total,
            "balance_after": available - total.points,
            "refusal": None if request.method == "POST" else _refusal(offer, member, available),
            "nav": "rewards",
        },
        status=422 if error else 200,
    )


@require_GET
@mall_member_required
def redemption_list(request: HttpRequest) -> HttpResponse:
    redemptions = member_redemptions(member=request.mall_member)[:100]
    return render(
        request,
        "rewards_mall/redemption_list.html",
        {"redemptions": redemptions, "nav": "redemptions"},
    )


def _own_redemption(request: HttpRequest, pk: int) -> Redemption:
    try:
        return member_redemption(member=request.mall_member, redemption_id=pk)
    except RedemptionNotFound as error:
        raise Http404(_("No such redemption.")) from error


def member_may_cancel(redemption: Redemption) -> bool:
    # A coupon's code is shown at once, so only the back office can take it back.
    return redemption.is_cancellable and redemption.reward.kind != Reward.Kind.COUPON


@require_GET
@mall_member_required
def redemption_detail(request: HttpRequest, pk: int) -> HttpResponse:
    redemption = _own_redemption(request, pk)
    return render(
        request,
        "rewards_mall/redemption_detail.html",
        {
            "redemption": redemption,
            "codes": [code.code for code in redemption.coupon_codes.all()],
            "may_cancel": member_may_cancel(redemption),
            "nav": "redemptions",
        },
    )


@require_POST
@mall_member_required
def redemption_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    redemption = _own_redemption(request, pk)
    if not member_may_cancel(redemption):
        messages.error(request, _("This redemption can no longer be cancelled."))
        return redirect("rewards_mall:redemption", pk=pk)
    try:
        cancel_redemption(redemption=redemption, reason=_("Cancelled by the member"))
    except LoyaltyError as refused:
        messages.error(request, refused.message)
    else:
        messages.success(request, _("Cancelled: your points are back."))
    return redirect("rewards_mall:redemption", pk=pk)


@require_GET
@mall_member_required
def history(request: HttpRequest) -> HttpResponse:
    """The member's ledger, newest first, with the balance after each entry."""
    entries = member_ledger(member=request.mall_member).exclude(kind="release")
    page = Paginator(entries.select_related("partner"), HISTORY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    for entry in page:
        entry.label = ENTRY_LABELS.get(entry.kind, entry.kind)
    return render(
        request,
        "rewards_mall/history.html",
        {
            "page": page,
            "points": member_points_summary(member=request.mall_member),
            "nav": "history",
        },
    )
