from django.apps import AppConfig


class SquadsConfig(AppConfig):
    name = "squads"
