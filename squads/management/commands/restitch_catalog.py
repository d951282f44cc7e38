"""Rebuild every service's stitched read form (after rows were written with raw SQL or COPY,
or a database restore): ``manage.py restitch_catalog``."""

from django.core.management.base import BaseCommand
from django.db import transaction

from squads import stitch


class Command(BaseCommand):
    help = "Recompute every service's list row, detail document, scorecard and search vector."

    def handle(self, *args, **options):
        with transaction.atomic():
            n = stitch.restitch_all()
        self.stdout.write(f"{n} services stitched")
