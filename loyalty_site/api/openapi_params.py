"""OpenAPI descriptions of the headers api.md's conventions add to writes."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter


def idempotency_key_parameter(*, required: bool = True) -> OpenApiParameter:
    return OpenApiParameter(
        "Idempotency-Key",
        OpenApiTypes.STR,
        location=OpenApiParameter.HEADER,
        required=required,
        description=_(
            "1-255 characters. The same key with the same body replays the first response "
            "(header Idempotent-Replayed: true); with another body: 422 idempotency_key_reused; "
            "while the first is running: 409 idempotency_key_in_flight."
        ),
    )
