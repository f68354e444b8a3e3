from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, register_converter

from annotation import views as annotation_views
from app import views as app_views
from generation import views as generation_views


class IdConverter:
    """A database id or round number: at most 18 digits (a bigint), so a huge number is a 404, not a 500."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class NameConverter:
    """A stage or action name: short, ASCII letters and underscores."""

    regex = "[a-z_]{1,32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdConverter, "id")
register_converter(NameConverter, "name")

urlpatterns = [
    path("", app_views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("seed/", annotation_views.seed_list, name="seed-list"),
    path("seed/new/", annotation_views.seed_edit, name="seed-new"),
    path("seed/<id:pk>/", annotation_views.seed_edit, name="seed-edit"),
    path("seed/bulk/", annotation_views.seed_bulk, name="seed-bulk"),
    path("seed/import/", annotation_views.seed_import, name="seed-import"),
    path("seed/export/", annotation_views.seed_export, name="seed-export"),
    path("audit/", annotation_views.audit_log, name="audit-log"),
    path("adjudicate/", annotation_views.adjudicate, name="adjudicate"),
    path("rounds/<id:number>/dashboard/", generation_views.round_dashboard, name="round-dashboard"),
    path("rounds/<id:number>/export/", generation_views.round_export, name="round-export"),
    path("review/", annotation_views.review_rounds, name="review-rounds"),
    path("review/<id:number>/", annotation_views.review_queue, name="review-queue"),
    path("review/<id:number>/decide/", annotation_views.review_decide, name="review-decide"),
    path("review/<id:number>/undo/", annotation_views.review_undo, name="review-undo"),
    path("review/me/", annotation_views.annotator_me, name="review-me"),
    path("review/annotators/<id:pk>/", annotation_views.annotator_page, name="annotator-page"),
    path("review/items/<id:pk>/", annotation_views.review_item, name="review-item"),
    path("status/", generation_views.status, name="status"),
    path("status/ping/", generation_views.status_ping, name="status-ping"),
    path("rounds/", generation_views.round_list, name="round-list"),
    path("rounds/new/", generation_views.round_launch, name="round-launch"),
    path("rounds/<id:number>/", generation_views.round_detail, name="round-detail"),
    path("rounds/<id:number>/review/close/", generation_views.round_close_review, name="round-close-review"),
    path("rounds/<id:number>/cancel/", generation_views.round_cancel, name="round-cancel"),
    path("rounds/<id:number>/guidelines/", generation_views.round_guidelines, name="round-guidelines"),
    path("models/", generation_views.model_list, name="model-list"),
    path("corpora/", generation_views.corpus_list, name="corpus-list"),
    path("corpora/<id:pk>/", generation_views.corpus_detail, name="corpus-detail"),
    path(
        "rounds/<id:number>/stages/<name:stage>/<name:action>/",
        generation_views.round_stage_action,
        name="round-stage-action",
    ),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
