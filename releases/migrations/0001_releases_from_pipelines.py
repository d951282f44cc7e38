import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


MODELS = ['environment', 'strategyoverride', 'analysistemplate', 'release', 'releaseevent', 'analysisrun', 'measurement']


def _move(apps, old, new):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label=new, model=model).exists():
            ContentType.objects.filter(app_label=old, model=model).update(app_label=new)


def move_content_types(apps, schema_editor):
    """Keep permissions and admin history: the content types follow the models."""
    _move(apps, "pipelines", "releases")


def move_content_types_back(apps, schema_editor):
    _move(apps, "releases", "pipelines")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('pipelines', '0002_releases'),
        ('squads', '0003_service_trigram_indexes'),
    ]

    # The tables exist (pipelines 0002 created them as pipelines_*): state only.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='AnalysisTemplate',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.SlugField(max_length=100, unique=True)),
                        ('description', models.TextField(blank=True)),
                        ('metrics', models.JSONField(default=list)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                    ],
                    options={
                        'db_table': 'pipelines_analysistemplate',
                    },
                ),
                migrations.CreateModel(
                    name='Environment',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.SlugField(unique=True)),
                        ('title', models.CharField(blank=True, max_length=100)),
                        ('order', models.PositiveSmallIntegerField(default=0)),
                        ('production', models.BooleanField(default=False)),
                        ('driver', models.CharField(choices=[('local', 'Local'), ('webhook', 'Webhook')], default='local', max_length=20)),
                        ('driver_config', models.JSONField(blank=True, default=dict)),
                        ('strategy', models.JSONField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'pipelines_environment',
                        'ordering': ['order', 'name'],
                    },
                ),
                migrations.CreateModel(
                    name='Release',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('version', models.CharField(max_length=200)),
                        ('commit_sha', models.CharField(blank=True, max_length=64)),
                        ('strategy', models.JSONField(default=list)),
                        ('strategy_source', models.CharField(default='default', max_length=20)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('progressing', 'Progressing'), ('paused', 'Paused'), ('succeeded', 'Succeeded'), ('aborted', 'Aborted'), ('failed', 'Failed')], db_index=True, default='pending', max_length=20)),
                        ('step_index', models.PositiveIntegerField(default=0)),
                        ('weight', models.PositiveSmallIntegerField(default=0)),
                        ('desired_weight', models.PositiveSmallIntegerField(default=0)),
                        ('generation', models.PositiveIntegerField(default=1)),
                        ('pause_until', models.DateTimeField(blank=True, null=True)),
                        ('message', models.TextField(blank=True)),
                        ('driver_action', models.CharField(blank=True, max_length=20)),
                        ('driver_error', models.TextField(blank=True)),
                        ('driver_failures', models.PositiveIntegerField(default=0)),
                        ('deploy_params', models.JSONField(blank=True, default=dict)),
                        ('started_by', models.CharField(blank=True, max_length=200)),
                        ('trigger', models.CharField(default='api', max_length=20)),
                        ('next_tick_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                        ('created_at', models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('environment', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='releases', to='releases.environment')),
                        ('pipeline_run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='releases', to='pipelines.pipelinerun')),
                        ('service', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='releases', to='squads.service')),
                    ],
                    options={
                        'db_table': 'pipelines_release',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='AnalysisRun',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('generation', models.PositiveIntegerField(default=1)),
                        ('step_index', models.PositiveIntegerField()),
                        ('weight', models.PositiveSmallIntegerField(default=0)),
                        ('template', models.CharField(max_length=100)),
                        ('metrics', models.JSONField(default=list)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('successful', 'Successful'), ('failed', 'Failed'), ('inconclusive', 'Inconclusive'), ('error', 'Error')], default='pending', max_length=20)),
                        ('message', models.TextField(blank=True)),
                        ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('next_measure_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('release', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='analysis_runs', to='releases.release')),
                    ],
                    options={
                        'db_table': 'pipelines_analysisrun',
                        'ordering': ['started_at', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='ReleaseEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('kind', models.CharField(max_length=30)),
                        ('from_status', models.CharField(blank=True, max_length=20)),
                        ('to_status', models.CharField(blank=True, max_length=20)),
                        ('step_index', models.IntegerField(blank=True, null=True)),
                        ('weight', models.IntegerField(blank=True, null=True)),
                        ('message', models.TextField(blank=True)),
                        ('actor', models.CharField(blank=True, max_length=200)),
                        ('door', models.CharField(blank=True, max_length=20)),
                        ('release', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='releases.release')),
                    ],
                    options={
                        'db_table': 'pipelines_releaseevent',
                        'ordering': ['at', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='StrategyOverride',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('steps', models.JSONField()),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('environment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='releases.environment')),
                        ('service', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='release_strategies', to='squads.service')),
                    ],
                    options={
                        'db_table': 'pipelines_strategyoverride',
                    },
                ),
                migrations.CreateModel(
                    name='Measurement',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('metric', models.CharField(max_length=100)),
                        ('index', models.PositiveIntegerField()),
                        ('at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('phase', models.CharField(max_length=20)),
                        ('value', models.FloatField(blank=True, null=True)),
                        ('stable_value', models.FloatField(blank=True, null=True)),
                        ('threshold', models.FloatField(blank=True, null=True)),
                        ('condition', models.CharField(blank=True, max_length=200)),
                        ('canary_requests', models.FloatField(blank=True, null=True)),
                        ('stable_requests', models.FloatField(blank=True, null=True)),
                        ('message', models.TextField(blank=True)),
                        ('analysis_run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='measurements', to='releases.analysisrun')),
                    ],
                    options={
                        'db_table': 'pipelines_measurement',
                        'ordering': ['analysis_run', 'metric', 'index'],
                        'constraints': [models.UniqueConstraint(fields=('analysis_run', 'metric', 'index'), name='measurement_unique_index')],
                    },
                ),
                migrations.AddConstraint(
                    model_name='release',
                    constraint=models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'progressing', 'paused'])), fields=('service', 'environment'), name='release_one_active_per_env'),
                ),
                migrations.AddConstraint(
                    model_name='analysisrun',
                    constraint=models.UniqueConstraint(fields=('release', 'generation', 'step_index'), name='analysis_run_unique_step'),
                ),
                migrations.AddConstraint(
                    model_name='strategyoverride',
                    constraint=models.UniqueConstraint(fields=('service', 'environment'), name='release_strategy_unique'),
                ),
                migrations.AddConstraint(
                    model_name='strategyoverride',
                    constraint=models.UniqueConstraint(condition=models.Q(('environment__isnull', True)), fields=('service',), name='release_strategy_unique_any_env'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back, elidable=True),
    ]
