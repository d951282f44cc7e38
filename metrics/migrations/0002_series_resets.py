from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_series_from_monitoring"),
    ]

    operations = [
        migrations.AddField(
            model_name="series",
            name="resets",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
