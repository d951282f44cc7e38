from django.urls import path

from identity import views

# no namespace: "login" and "logout" are the names Django's settings and every template use
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("oidc/login/", views.oidc_login, name="oidc_login"),
    path("oidc/callback/", views.oidc_callback, name="oidc_callback"),
    path("me/", views.my_profile, name="my_profile"),
    path("people/<entity:slug>/", views.person_profile, name="person_profile"),
]
