"""``/dashboard/``: the page and the CSV/xlsx exports of its tables."""

from django.urls import path

from analytics import views

urlpatterns = [
    path("", views.dashboard_page, name="dashboard"),
    path("export/<slug:name>.<str:fmt>", views.table_export, name="dashboard-export"),
]
