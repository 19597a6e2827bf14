"""/mall/: the member-facing rewards mall pages."""

from django.urls import path

from rewards_mall import views

app_name = "rewards_mall"

urlpatterns = [
    path("", views.home, name="home"),
    path("enter/<str:token>/", views.enter, name="enter"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("rewards/", views.reward_list, name="rewards"),
    path("rewards/<slug:code>/", views.reward_detail, name="reward"),
    path("rewards/<slug:code>/redeem/", views.redeem_confirm, name="redeem"),
    path("redemptions/", views.redemption_list, name="redemptions"),
    path("redemptions/<int:pk>/", views.redemption_detail, name="redemption"),
    path("redemptions/<int:pk>/cancel/", views.redemption_cancel, name="redemption-cancel"),
    path("history/", views.history, name="history"),
    path("inbox/read/", views.inbox_read, name="inbox-read"),
    path("check-in/", views.check_in, name="check-in"),
]
