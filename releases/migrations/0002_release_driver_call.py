from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0001_releases_from_pipelines"),
    ]

    operations = [
        migrations.AddField(
            model_name="release",
            name="driver_call",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
