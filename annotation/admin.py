from django.contrib import admin

from annotation.models import Candidate, Review, SeedExample


@admin.register(SeedExample)
class SeedExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "short_instruction", "source", "version", "is_active", "created_by", "created_at")
    list_filter = ("source", "is_active")
    search_fields = ("instruction", "response")
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="instruction")
    def short_instruction(self, obj: SeedExample) -> str:
        return obj.instruction[:80]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ("id", "round", "status", "score", "short_instruction", "updated_at")
    list_filter = ("status", "round")
    search_fields = ("instruction", "rewritten_response", "final_instruction")
    raw_id_fields = ("segment",)
    readonly_fields = ("created_at", "updated_at")

    @admin.display(description="instruction")
    def short_instruction(self, obj: Candidate) -> str:
        return obj.instruction[:80]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("id", "candidate", "reviewer", "action", "reason", "seconds_spent", "created_at")
    list_filter = ("action", "reason")
    raw_id_fields = ("candidate",)
