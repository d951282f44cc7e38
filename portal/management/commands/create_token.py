from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from portal import services
from portal.actors import Actor
from portal.catalog import squad_model
from portal.models import SCOPE_NAMES


class Command(BaseCommand):
    help = "Create a bot token for a squad; the token alone is printed on the last line."

    def add_arguments(self, parser):
        parser.add_argument("--squad", required=True, help="squad slug")
        parser.add_argument(
            "--scopes", nargs="*", default=[], help=f"any of: {', '.join(SCOPE_NAMES)}"
        )
        parser.add_argument("--name", default="bot")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, squad, scopes, name, expires_in_days, **options):
        try:
            squad_obj = squad_model().objects.get(slug=squad)
        except squad_model().DoesNotExist:
            raise CommandError(f"No squad with slug '{squad}'.") from None
        unknown = [s for s in scopes if s not in SCOPE_NAMES]
        if unknown:
            raise CommandError(
                f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(SCOPE_NAMES)}"
            )
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        token, raw = services.create_token(
            squad_obj, actor=Actor.command(), name=name, scopes=scopes, expires_at=expires_at
        )
        self.stdout.write(
            f"Created token '{token.name}' for squad {squad_obj.slug} with scopes: {', '.join(token.scopes) or '(read only)'}"
        )
        self.stdout.write(raw)
