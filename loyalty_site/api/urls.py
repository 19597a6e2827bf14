"""/api/v1/: every app's API routes, the OpenAPI document and the interactive docs."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from loyalty_site.api import schema  # noqa: F401  (registers the Api-Key security scheme)

urlpatterns = [
    path(
        "schema/",
        SpectacularAPIView.as_view(authentication_classes=[], permission_classes=[]),
        name="api-schema",
    ),
    path(
        "docs/",
        SpectacularSwaggerView.as_view(
            url_name="api-schema", authentication_classes=[], permission_classes=[]
        ),
        name="api-docs",
    ),
    path("", include("members.api")),
    path("", include("points.api")),
    path("", include("campaigns.api")),
    path("", include("rewards_mall.api")),
]
