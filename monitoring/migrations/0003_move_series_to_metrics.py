from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('monitoring', '0002_drop_sample_t_index'),
    ]

    # ScrapeTarget, Series and Sample moved to the metrics app (same tables): state only.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='scrapetarget',
                    name='service',
                ),
                migrations.RemoveField(
                    model_name='series',
                    name='target',
                ),
                migrations.RemoveField(
                    model_name='series',
                    name='service',
                ),
                migrations.DeleteModel(
                    name='Sample',
                ),
                migrations.DeleteModel(
                    name='ScrapeTarget',
                ),
                migrations.DeleteModel(
                    name='Series',
                ),
            ],
            database_operations=[],
        ),
    ]
