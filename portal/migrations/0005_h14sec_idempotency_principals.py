"""Idempotency records from before principals were token / user ids: those keyed on a hash of
the Authorization header can never match again (delete them); a stored answer carrying a new
token's value loses the value (a repeat says "already created")."""

from django.db import migrations


def forget_header_keys_and_secrets(apps, schema_editor):
    record = apps.get_model("portal", "IdempotencyRecord")
    record.objects.filter(principal__startswith="t:").exclude(
        principal__regex=r"^t:[0-9]+$"
    ).delete()
    record.objects.filter(principal__startswith="anon:").delete()
    for rec in record.objects.filter(response_body__has_key="token").iterator():
        body = rec.response_body
        if isinstance(body, dict) and str(body.get("token", "")).startswith("bl_"):
            shown = {k: v for k, v in body.items() if k != "token"}
            rec.status_code = 409
            rec.response_body = {
                "code": "already_created",
                "message": "A token was already created by the first request with this "
                "Idempotency-Key; its value is shown only once.",
                "state": shown,
            }
            rec.save(update_fields=["status_code", "response_body"])


class Migration(migrations.Migration):
    dependencies = [("portal", "0004_h14sec_encrypted_secrets")]

    operations = [
        migrations.RunPython(forget_header_keys_and_secrets, migrations.RunPython.noop),
    ]
