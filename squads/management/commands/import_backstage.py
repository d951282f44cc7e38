from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from portal.actors import Actor
from squads import backstage


class Command(BaseCommand):
    help = (
        "Import Backstage descriptor files (paths, directories, file:// or http(s) URLs). "
        "All-or-nothing: on any invalid entity every error is printed and nothing is written."
    )

    def add_arguments(self, parser):
        parser.add_argument("targets", nargs="+", metavar="PATH_OR_URL")
        parser.add_argument("--dry-run", action="store_true", help="validate only; write nothing")

    def handle(self, *args, targets, dry_run, **options):
        try:
            sources = backstage.load_sources(targets)
        except backstage.SourceError as exc:
            raise CommandError(str(exc)) from exc
        try:
            report = backstage.import_catalog(sources, Actor.command(), dry_run=dry_run)
        except backstage.ImportFailed as exc:
            for error in exc.errors:
                self.stderr.write(f"error: {error}")
            n = len(exc.errors)
            raise CommandError(
                f"{n} error{'s' if n != 1 else ''}; nothing was imported (database unchanged)"
            ) from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary)
