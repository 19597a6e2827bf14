"""A test-only URLconf: the project's URLs plus views that exercise the API plumbing."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.urls import path
from django.utils import timezone
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty_site.api.idempotency import IdempotentAPIView
from loyalty_site.urls import handler404, handler500  # noqa: F401  (used by Django)
from loyalty_site.urls import urlpatterns as project_urlpatterns
from members.exceptions import MemberFrozen
from members.models import Member
from members.services import member_upsert

# Called inside CreateMemberApi's write: tests use it to hold a request in flight.
in_flight_hooks: list[Callable[[], None]] = []


class FailingApi(APIView):
    required_scopes = ["members:read"]

    def get(self, request):
        raise RuntimeError("a bug in an API view")


def failing_plain_view(request):
    raise RuntimeError("a bug in a plain Django view under /api/")


class MemberListApi(ListAPIView):
    required_scopes = ["members:read"]
    queryset = Member.objects.all()

    class OutputSerializer(serializers.Serializer):
        external_id = serializers.CharField()

    serializer_class = OutputSerializer


class CreateMemberApi(IdempotentAPIView):
    """Creates one member per executed request: the effect the idempotency tests count."""

    required_scopes = ["members:write"]

    def perform_post(self, request):
        for hook in list(in_flight_hooks):
            hook()
        member = member_upsert(
            external_id=f"idem-{uuid.uuid4().hex}", name=request.data["name"]
        ).member
        if request.data.get("fail"):
            raise MemberFrozen()  # a domain error after a write: the write must not survive
        return Response(
            {
                "external_id": member.external_id,
                "name": member.name,
                "answered_at": timezone.now(),
            },
            status=201,
        )


urlpatterns = [
    path("api/v1/test/failing", FailingApi.as_view()),
    path("api/v1/test/failing-plain", failing_plain_view),
    path("api/v1/test/members", MemberListApi.as_view()),
    path("api/v1/test/idempotent-members", CreateMemberApi.as_view()),
    *project_urlpatterns,
]
