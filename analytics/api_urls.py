"""``/api/v1/analytics/``: the dashboard's JSON."""

from django.urls import path

from analytics import api

urlpatterns = [
    path("dashboard/", api.DashboardView.as_view(), name="analytics-api-dashboard"),
    path("tables/<slug:name>/", api.TableView.as_view(), name="analytics-api-table"),
]
