"""``manage.py rotate_secrets_key``: every secret at rest re-encrypted under a new key.

- ``BACKLINE_SECRETS_KEY`` set (production): list the new key first and the old one(s) after it
  (``BACKLINE_SECRETS_KEY=NEW,OLD``, on every process), run this, then drop the old keys.
  While it runs, and until the old keys are dropped, everything stays readable.
- The generated key file (``var/secrets.key``, embedded/dev mode): this generates the new key,
  puts it first in the file (the old key still reads), re-encrypts, then leaves only the new key.

All-or-nothing: one transaction; a value no configured key decrypts stops it, naming the row.
"""

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from portal import crypto
from portal.fields import encrypted_fields, reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every secret stored in the database under the first (new) key."

    def handle(self, *args, **options):
        file_mode = crypto.uses_key_file()
        old_keys = crypto.keys()
        path = crypto.key_file()
        if file_mode:
            new = Fernet.generate_key().decode()
            crypto.write_key_file(path, [new, *old_keys])
        try:
            counts = self._reencrypt_all()
        except crypto.SecretUnreadable as exc:
            if file_mode:
                crypto.write_key_file(path, old_keys)
            raise CommandError(str(exc)) from None
        if file_mode:
            crypto.write_key_file(path, [new])
        for label, n in counts:
            self.stdout.write(f"{label}: {n} row{'s' if n != 1 else ''} re-encrypted")
        total = sum(n for _, n in counts)
        if file_mode:
            self.stdout.write(f"{total} rows re-encrypted under a new key in {path}.")
        else:
            self.stdout.write(
                f"{total} rows re-encrypted under the first key of BACKLINE_SECRETS_KEY."
                + (
                    " Now remove the old key(s) from BACKLINE_SECRETS_KEY."
                    if len(old_keys) > 1
                    else ""
                )
            )

    def _reencrypt_all(self) -> list[tuple[str, int]]:
        by_model: dict = {}
        for model, field in encrypted_fields():
            by_model.setdefault(model, []).append(field.attname)
        counts = []
        with transaction.atomic():
            for model, names in by_model.items():
                try:
                    n = reencrypt(model, names)
                except crypto.SecretUnreadable as exc:
                    raise crypto.SecretUnreadable(
                        f"{model._meta.label} ({', '.join(names)}): {exc}"
                    ) from None
                counts.append((f"{model._meta.label}.{'/'.join(names)}", n))
        return counts
