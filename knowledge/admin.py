from django.contrib import admin

from knowledge import services
from knowledge.models import KeywordRule


@admin.register(KeywordRule)
class KeywordRuleAdmin(admin.ModelAdmin):
    list_display = ["keyword", "name", "match_type", "priority", "enabled", "updated_at"]
    list_filter = ["match_type", "enabled"]
    list_editable = ["priority", "enabled"]
    search_fields = ["keyword", "name", "reply"]

    def save_model(self, request, obj, form, change):
        services.keyword_rule_save(rule=obj)

    def delete_model(self, request, obj):
        services.keyword_rule_delete(rule=obj)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.keyword_rule_delete(rule=rule)
