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
    path("seed/new/", annotation_views.seed_edit, name="seed-new"),
    path("seed/<int:pk>/", annotation_views.seed_edit, name="seed-edit"),
    path("seed/bulk/", annotation_views.seed_bulk, name="seed-bulk"),
    path("seed/import/", annotation_views.seed_import, name="seed-import"),
    path("seed/export/", annotation_views.seed_export, name="seed-export"),
    path("audit/", annotation_views.audit_log, name="audit-log"),
    path("adjudicate/", annotation_views.adjudicate, name="adjudicate"),
    path("rounds/<int:number>/dashboard/", annotation_views.round_dashboard, name="round-dashboard"),
    path("rounds/<int:number>/export/", annotation_views.round_export, name="round-export"),
    path("review/", annotation_views.review_rounds, name="review-rounds"),
    path("review/<int:number>/", annotation_views.review_queue, name="review-queue"),
    path("review/<int:number>/decide/", annotation_views.review_decide, name="review-decide"),
    path("review/<int:number>/undo/", annotation_views.review_undo, name="review-undo"),
    path("status/", generation_views.status, name="status"),
    path("status/ping/", generation_views.status_ping, name="status-ping"),
    path("rounds/", generation_views.round_list, name="round-list"),
    path("rounds/new/", generation_views.round_launch, name="round-launch"),
    path("rounds/<int:number>/", generation_views.round_detail, name="round-detail"),
    path("rounds/<int:number>/review/close/", generation_views.round_close_review, name="round-close-review"),
    path("rounds/<int:number>/cancel/", generation_views.round_cancel, name="round-cancel"),
    path("models/", generation_views.model_list, name="model-list"),
    path("corpora/", generation_views.corpus_list, name="corpus-list"),
    path("corpora/<int:pk>/", generation_views.corpus_detail, name="corpus-detail"),
    path(
        "rounds/<int:number>/stages/<str:stage>/<str:action>/",
        generation_views.round_stage_action,
        name="round-stage-action",
    ),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
]
