from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from loyalty_site import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("loyalty_site.api.urls")),
    path("mall/", include("rewards_mall.urls")),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

handler404 = "loyalty_site.api.errors.handler404"
handler500 = "loyalty_site.api.errors.handler500"
