from django import forms

from monitoring.models import TRACKS, AlertRule, NotificationChannel
from monitoring.services import CHANNEL_FIELDS, RULE_FIELDS


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = [f for f in RULE_FIELDS if f != "enabled"]
        widgets = {
            "query": forms.TextInput(),
            "track": forms.Select(choices=[(t, t) for t in TRACKS]),
        }


class NotificationChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = [f for f in CHANNEL_FIELDS if f != "enabled"]

    def __init__(self, *args, squads=None, **kwargs):
        super().__init__(*args, **kwargs)
        if squads is not None:
            self.fields["squad"].queryset = squads
        self.fields["squad"].to_field_name = "slug"
