import django.db.models.deletion
from django.db import migrations, models


MODELS = ['scrapetarget', 'series', 'sample']


def _move(apps, old, new):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types(apps, schema_editor):
    """Keep permissions and admin history: the content types follow the models."""
    _move(apps, "monitoring", "metrics")


def move_content_types_back(apps, schema_editor):
    _move(apps, "metrics", "monitoring")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('monitoring', '0002_drop_sample_t_index'),
        ('squads', '0003_service_trigram_indexes'),
    ]

    # The tables exist (monitoring 0001/0002 created them as monitoring_*): state only.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ScrapeTarget',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('url', models.CharField(max_length=500)),
                        ('track', models.CharField(blank=True, max_length=20)),
                        ('health', models.CharField(default='unknown', max_length=10)),
                        ('last_scrape_at', models.DateTimeField(blank=True, null=True)),
                        ('last_error', models.TextField(blank=True)),
                        ('last_duration_ms', models.FloatField(blank=True, null=True)),
                        ('last_samples', models.PositiveIntegerField(default=0)),
                        ('service', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='scrape_targets', to='squads.service')),
                    ],
                    options={
                        'db_table': 'monitoring_scrapetarget',
                        'ordering': ['service__name', 'url'],
                    },
                ),
                migrations.CreateModel(
                    name='Series',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=200)),
                        ('kind', models.CharField(default='gauge', max_length=20)),
                        ('labels', models.JSONField(default=dict)),
                        ('key', models.CharField(max_length=1000)),
                        ('track', models.CharField(blank=True, db_index=True, max_length=20)),
                        ('code', models.CharField(blank=True, max_length=10)),
                        ('le', models.FloatField(blank=True, null=True)),
                        ('last_raw', models.FloatField(blank=True, null=True)),
                        ('offset', models.FloatField(default=0)),
                        ('last_t', models.FloatField(blank=True, null=True)),
                        ('created', models.FloatField(blank=True, null=True)),
                        ('service', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='squads.service')),
                        ('target', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='series', to='metrics.scrapetarget')),
                    ],
                    options={
                        'verbose_name_plural': 'series',
                        'db_table': 'monitoring_series',
                    },
                ),
                migrations.CreateModel(
                    name='Sample',
                    fields=[
                        ('pk', models.CompositePrimaryKey('series_id', 't', blank=True, editable=False, primary_key=True, serialize=False)),
                        ('t', models.FloatField()),
                        ('value', models.FloatField()),
                        ('series', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, to='metrics.series')),
                    ],
                    options={
                        'db_table': 'monitoring_sample',
                    },
                ),
                migrations.AddConstraint(
                    model_name='scrapetarget',
                    constraint=models.UniqueConstraint(fields=('service', 'url'), name='scrapetarget_unique'),
                ),
                migrations.AddIndex(
                    model_name='series',
                    index=models.Index(fields=['service', 'name'], name='monitoring__service_16d55d_idx'),
                ),
                migrations.AddConstraint(
                    model_name='series',
                    constraint=models.UniqueConstraint(fields=('target', 'name', 'key'), name='series_unique'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back, elidable=True),
    ]
