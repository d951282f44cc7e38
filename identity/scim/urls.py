from django.urls import path, re_path

from identity.scim import pages, views

app_name = "scim"

urlpatterns = [
    re_path(r"^scim/v2/?(?P<rest>[\s\S]*?)/?\Z", views.scim_endpoint, name="scim"),
    path("directory/sync/", pages.directory_sync, name="directory_sync"),
]
