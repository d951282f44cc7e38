from django.core.management.base import BaseCommand

from squads import backstage


class Command(BaseCommand):
    help = "Print the whole catalog as multi-document Backstage YAML on stdout."

    def handle(self, *args, **options):
        self.stdout.write(backstage.export_catalog(), ending="")
