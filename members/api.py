"""PUT / GET /api/v1/members/{external_id} (api.md, "Members")."""

from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from members.models import Member
from members.selectors import member_by_external_id
from members.services import member_upsert
from points.selectors import member_points_summary


class MemberInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=128, required=False, allow_blank=True)
    phone = serializers.CharField(max_length=32, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    birthday = serializers.DateField(required=False, allow_null=True)
    marketing_consent = serializers.BooleanField(required=False)
    language = serializers.ChoiceField(choices=Member.Language.choices, required=False)
    referral_code = serializers.CharField(max_length=16, required=False, allow_blank=True)


class TierSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()


class ExpiringSerializer(serializers.Serializer):
    amount = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class PointsSerializer(serializers.Serializer):
    available = serializers.IntegerField()
    pending = serializers.IntegerField()
    expiring = ExpiringSerializer(many=True)


class MemberOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Member.Status.choices)
    tier = TierSerializer()
    growth = serializers.IntegerField()
    points = PointsSerializer()
    referral_code = serializers.CharField()
    joined_at = serializers.DateTimeField()


def member_representation(member: Member) -> dict:
    return MemberOutputSerializer(
        {
            "external_id": member.external_id,
            "name": member.name,
            "status": member.status,
            "tier": {"code": member.tier.code, "name": member.tier.name},
            "growth": member.growth,
            "points": member_points_summary(member=member),
            "referral_code": member.referral_code,
            "joined_at": member.joined_at,
        }
    ).data


class MemberDetailApi(APIView):
    required_scopes = {"GET": ["members:read"], "PUT": ["members:write"]}

    @extend_schema(responses={200: MemberOutputSerializer}, summary=_("Read a member"))
    def get(self, request, external_id: str):
        member = member_by_external_id(external_id=external_id)
        return Response(member_representation(member))

    @extend_schema(
        request=MemberInputSerializer,
        responses={200: MemberOutputSerializer, 201: MemberOutputSerializer},
        summary=_("Create or update a member"),
    )
    def put(self, request, external_id: str):
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
