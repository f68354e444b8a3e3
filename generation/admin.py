from django.contrib import admin

from generation.models import Corpus, Job, ModelVersion, Round, Segment


@admin.register(Corpus)
class CorpusAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("id", "corpus", "source_id", "char_count")
    list_filter = ("corpus",)
    search_fields = ("source_id", "url")
    raw_id_fields = ("corpus",)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "path", "round", "created_at")
    list_filter = ("role",)


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    list_display = ("number", "state", "corpus", "config_hash", "created_at")
    list_filter = ("state",)
    # services.round_transition is the only writer of the state (pipeline/lifecycle.py), not this form.
    readonly_fields = ("state",)

    def save_model(self, request, obj, form, change):
        if change:  # only what was edited: a full save would write back the state read with the form
            obj.save(update_fields=form.changed_data)
        else:
            super().save_model(request, obj, form, change)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "round", "stage", "chunk", "status", "progress_done", "progress_total", "heartbeat_at")
    list_filter = ("status", "stage", "queue")
