"""State keyed by a per-workspace identity (``state_key``) and the pg backend (issue 14).

Existing workspaces get their id as their key, so their local state stays exactly where it was
(``ws-<id>``); every workspace created from now on gets a random key that no other workspace in
any database will have. Existing rows keep their backend (local): nothing moves until someone
chooses pg for them.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import infra.tfstate


def keep_existing_paths(apps, schema_editor):
    Workspace = apps.get_model("infra", "Workspace")
    for ws in Workspace.objects.filter(state_key__isnull=True).only("pk"):
        Workspace.objects.filter(pk=ws.pk).update(state_key=str(ws.pk))


class Migration(migrations.Migration):
    dependencies = [
        ("infra", "0003_workspace_allow_provisioners"),
    ]

    operations = [
        migrations.AddField(
            model_name="workspace",
            name="state_key",
            field=models.CharField(max_length=40, null=True, editable=False),
        ),
        migrations.RunPython(keep_existing_paths, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="workspace",
            name="state_key",
            field=models.CharField(
                default=infra.tfstate.new_state_key, editable=False, max_length=40, unique=True
            ),
        ),
        migrations.AlterField(
            model_name="workspace",
            name="backend",
            field=models.CharField(
                choices=[
                    ("pg", "State in Backline's PostgreSQL (pg backend)"),
                    ("local", "State file on the worker's disk (local backend)"),
                    ("configured", "Backend configured in the Terraform code"),
                ],
                default=infra.tfstate.default_backend,
                max_length=12,
            ),
        ),
        migrations.CreateModel(
            name="SavedPlan",
            fields=[
                (
                    "run",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="saved_plan",
                        serialize=False,
                        to="infra.terraformrun",
                    ),
                ),
                ("data", models.BinaryField()),
                ("sha256", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
    ]
