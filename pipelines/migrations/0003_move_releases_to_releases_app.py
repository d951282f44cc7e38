from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('pipelines', '0002_releases'),
    ]

    # The release models moved to the releases app (same pipelines_* tables): state only.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='analysisrun',
                    name='release',
                ),
                migrations.RemoveField(
                    model_name='measurement',
                    name='analysis_run',
                ),
                migrations.DeleteModel(
                    name='AnalysisTemplate',
                ),
                migrations.RemoveField(
                    model_name='release',
                    name='environment',
                ),
                migrations.RemoveField(
                    model_name='strategyoverride',
                    name='environment',
                ),
                migrations.RemoveField(
                    model_name='release',
                    name='pipeline_run',
                ),
                migrations.RemoveField(
                    model_name='release',
                    name='service',
                ),
                migrations.RemoveField(
                    model_name='releaseevent',
                    name='release',
                ),
                migrations.RemoveField(
                    model_name='strategyoverride',
                    name='service',
                ),
                migrations.DeleteModel(
                    name='AnalysisRun',
                ),
                migrations.DeleteModel(
                    name='Measurement',
                ),
                migrations.DeleteModel(
                    name='Environment',
                ),
                migrations.DeleteModel(
                    name='Release',
                ),
                migrations.DeleteModel(
                    name='ReleaseEvent',
                ),
                migrations.DeleteModel(
                    name='StrategyOverride',
                ),
            ],
            database_operations=[],
        ),
    ]
