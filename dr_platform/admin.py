from django.contrib import admin

from dr_platform.models import Membership


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email", "organization__legal_name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]
