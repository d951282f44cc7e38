from django import forms

from monitoring.models import TRACKS, AlertRule, NotificationChannel


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = [
            "name",
            "signal",
            "query",
            "track",
            "comparison",
            "threshold",
            "window_seconds",
            "for_seconds",
            "severity",
        ]
        widgets = {
            "query": forms.TextInput(),
            "track": forms.Select(choices=[(t, t) for t in TRACKS]),
        }

    def clean(self):
        data = super().clean()
        if not data.get("signal") and not (data.get("query") or "").strip():
            raise forms.ValidationError("Choose a signal or write a query.")
        if data.get("signal") and (data.get("query") or "").strip():
            raise forms.ValidationError("Choose a signal or write a query, not both.")
        if (data.get("query") or "").strip():
            from monitoring.services import query_error

            problem = query_error(data["query"].strip())
            if problem:
                self.add_error("query", problem)
        return data


class NotificationChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = ["squad", "name", "kind", "url", "secret", "min_severity"]

    def __init__(self, *args, squads=None, **kwargs):
        super().__init__(*args, **kwargs)
        if squads is not None:
            self.fields["squad"].queryset = squads
        self.fields["squad"].to_field_name = "slug"
