from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation import views as annotation_views
from generation import views as generation_views

urlpatterns = [
    path("", annotation_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("seed/", annotation_views.seed_list, name="seed-list"),
    path("status/", generation_views.status, name="status"),
    path("status/ping/", generation_views.status_ping, name="status-ping"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
