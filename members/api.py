"""PUT / GET /api/v1/members/{external_id} (api.md, "Members")."""

from __future__ import annotations

from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty_site.api.errors import PROBLEM_CONTENT_TYPE
from loyalty_site.api.schema import problem
from members.models import Member
from members.selectors import member_by_external_id, member_tier_status
from members.services import member_upsert
from points.selectors import member_points_summary

EXTERNAL_ID_MAX_LENGTH = Member._meta.get_field("external_id").max_length

EXTERNAL_ID_PARAMETER = OpenApiParameter(
    "external_id",
    OpenApiTypes.STR,
    location=OpenApiParameter.PATH,
    description=_("The member's id in the partner systems, 1 to 128 characters."),
)

MEMBER_EXAMPLE = {
    "external_id": "u-1001",
    "name": "王小明",
    "status": "active",
    "tier": {"code": "silver", "name": "银卡 Silver"},
    "growth": 1520,
    "next_tier": {"code": "gold", "growth_needed": 480},
    "projected_tier": {"code": "silver", "name": "银卡 Silver"},
    "tier_period_ends_at": "2025-09-30T10:15:00+08:00",
    "growth_to_keep_tier": 320,
    "points": {
        "available": 830,
        "pending": 120,
        "expiring": [{"amount": 200, "expires_at": "2025-06-30T23:59:59.999999+08:00"}],
    },
    "referral_code": "K7X2Q9",
    "joined_at": "2024-03-02T10:15:00+08:00",
}


class MemberTierSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class NextTierSerializer(serializers.Serializer):
    code = serializers.CharField()
    growth_needed = serializers.IntegerField(
        help_text=_("Growth value still needed over the qualifying window to reach it.")
    )


class ExpiringPointsSerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class PointsSummarySerializer(serializers.Serializer):
    available = serializers.IntegerField()
    pending = serializers.IntegerField()
    expiring = ExpiringPointsSerializer(
        many=True, help_text=_("The next expiry dates (at most 3) and the amount on each.")
    )


class MemberInputSerializer(serializers.Serializer):
    """The body of PUT /members/{external_id}; every field is optional."""

    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    birthday = serializers.DateField(
        required=False, allow_null=True, help_text=_("null clears it.")
    )
    marketing_consent = serializers.BooleanField(required=False)
    language = serializers.ChoiceField(choices=Member.Language.choices, required=False)
    referral_code = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        help_text=_("The inviter's referral code; used only when the member is created."),
    )

    def validate_birthday(self, value):
        if value is not None and value > timezone.localdate():
            raise serializers.ValidationError(_("A birthday cannot be in the future."))
        return value


class MemberOutputSerializer(serializers.Serializer):
    """The member object of api.md."""

    external_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Member.Status.choices)
    tier = MemberTierSerializer()
    growth = serializers.IntegerField(
        help_text=_("Growth value (成长值) over the qualifying window; never spendable.")
    )
    next_tier = NextTierSerializer(
        allow_null=True, help_text=_("The tier above the member's; null in the top tier.")
    )
    projected_tier = MemberTierSerializer(
        help_text=_(
            "The tier the member will hold when the current tier period ends if nothing changes."
        )
    )
    tier_period_ends_at = serializers.DateTimeField(
        allow_null=True,
        help_text=_("When the tier can next move down; null in the entry tier."),
    )
    growth_to_keep_tier = serializers.IntegerField(
        help_text=_("Growth value still needed before the period ends to keep the tier.")
    )
    points = PointsSummarySerializer()
    referral_code = serializers.CharField(help_text=_("This member's own invite code."))
    joined_at = serializers.DateTimeField()


def _tier(tier) -> dict:
    return {"code": tier.code, "name": tier.display_name}


def member_representation(member: Member) -> dict:
    """The member object of api.md, with `points` from the ledger and the tier progress."""
    progress = member_tier_status(member=member)
    next_tier = None
    if progress.next_tier is not None:
        next_tier = {"code": progress.next_tier.code, "growth_needed": progress.growth_needed}
    return MemberOutputSerializer(
        {
            "external_id": member.external_id,
            "name": member.name,
            "status": member.status,
            "tier": _tier(progress.tier),
            "growth": member.growth,
            "next_tier": next_tier,
            "projected_tier": _tier(progress.projected_tier),
            "tier_period_ends_at": progress.period_ends_at,
            "growth_to_keep_tier": progress.growth_to_keep,
            "points": member_points_summary(member=member),
            "referral_code": member.referral_code,
            "joined_at": member.joined_at,
        }
    ).data


class MemberDetailApi(APIView):
    """One member: read it (members:read) or create / update it (members:write)."""

    required_scopes = {"GET": ["members:read"], "PUT": ["members:write"]}

    @extend_schema(
        operation_id="members_retrieve",
        summary=_("Read a member"),
        tags=["members"],
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={
            200: OpenApiResponse(MemberOutputSerializer, description=_("The member.")),
            (404, PROBLEM_CONTENT_TYPE): problem(_("`not_found`: no member with this id.")),
        },
        examples=[OpenApiExample("member", value=MEMBER_EXAMPLE, response_only=True)],
    )
    def get(self, request, external_id: str):
        member = member_by_external_id(external_id=external_id)
        return Response(member_representation(member))

    @extend_schema(
        operation_id="members_upsert",
        summary=_("Create or update a member"),
        description=_(
            "Creates the member (201) or updates the fields given (200); fields left out keep "
            "their value. `referral_code` is the inviter's code and is used only at creation."
        ),
        tags=["members"],
        parameters=[EXTERNAL_ID_PARAMETER],
        request=MemberInputSerializer,
        responses={
            200: OpenApiResponse(MemberOutputSerializer, description=_("Updated.")),
            201: OpenApiResponse(MemberOutputSerializer, description=_("Created.")),
            (400, PROBLEM_CONTENT_TYPE): problem(
                _("`validation_error`: a field is not valid; see `errors`."), validation=True
            ),
            (422, PROBLEM_CONTENT_TYPE): problem(
                _("`validation_error`: no member has this referral code.")
            ),
        },
        examples=[
            OpenApiExample(
                "new member",
                value={
                    "name": "王小明",
                    "phone": "13800138000",
                    "email": "xiaoming@example.com",
                    "birthday": "1990-05-17",
                    "marketing_consent": True,
                    "referral_code": "K7X2Q9",
                },
                request_only=True,
            ),
            OpenApiExample("member", value=MEMBER_EXAMPLE, response_only=True),
        ],
    )
    def put(self, request, external_id: str):
        if len(external_id) > EXTERNAL_ID_MAX_LENGTH:
            raise exceptions.ValidationError(
                {"external_id": [_("At most 128 characters.")]}, code="max_length"
            )
        serializer = MemberInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = member_upsert(external_id=external_id, **serializer.validated_data)
        return Response(
            member_representation(result.member),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


urlpatterns = [
    path("members/<str:external_id>", MemberDetailApi.as_view(), name="api-member-detail"),
]
