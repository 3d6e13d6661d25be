"""Small forms for the case page and offender page (they only parse; services decide)."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from apps.console.choices import DISMISSAL_REASONS, ClosureReason, Severity, Tlp
from apps.console.config import MAX_QUARANTINE_HOURS
from apps.console.services import MAX_COMMENT_CHARS, MAX_NOTE_CHARS

DISMISS_CHOICES = [(value, label) for value, label in ClosureReason.choices
                   if value in DISMISSAL_REASONS]


class ConfirmForm(forms.Form):
    quarantine = forms.BooleanField(required=False, initial=True,
                                    help_text="Quarantine the offender (a signed policy "
                                              "transaction through consensus)")
    hours = forms.IntegerField(min_value=1, max_value=MAX_QUARANTINE_HOURS, required=False)
    comment = forms.CharField(max_length=MAX_COMMENT_CHARS, required=False)


class DismissForm(forms.Form):
    reason = forms.ChoiceField(choices=DISMISS_CHOICES)
    comment = forms.CharField(max_length=MAX_COMMENT_CHARS, required=False)


class ReopenForm(forms.Form):
    comment = forms.CharField(max_length=MAX_COMMENT_CHARS)


class NoteForm(forms.Form):
    body = forms.CharField(max_length=MAX_NOTE_CHARS, widget=forms.Textarea(attrs={"rows": 3}))


class TagsForm(forms.Form):
    add = forms.CharField(required=False, max_length=500,
                          help_text="Comma-separated: ATT&CK ids (T1110.001) or words")
    remove = forms.CharField(required=False, max_length=500)

    @staticmethod
    def split(value: str) -> list[str]:
        return [part.strip() for part in value.split(",") if part.strip()]


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=get_user_model().objects.none(), required=False,
                                      empty_label="(unassigned)")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        triagers = Q(groups__permissions__codename="triage_case") | Q(
            user_permissions__codename="triage_case") | Q(is_superuser=True)
        field = self.fields["assignee"]
        assert isinstance(field, forms.ModelChoiceField)  # noqa: S101
        field.queryset = (get_user_model().objects.filter(triagers, is_active=True)
                          .distinct().order_by("username"))


class ClassifyForm(forms.Form):
    severity = forms.ChoiceField(choices=Severity.choices)
    tlp = forms.ChoiceField(choices=Tlp.choices, label="TLP")


class ReleaseForm(forms.Form):
    reason = forms.CharField(max_length=200)


class QuarantineForm(forms.Form):
    hours = forms.IntegerField(min_value=1, max_value=MAX_QUARANTINE_HOURS, initial=24)
    reason = forms.CharField(max_length=200)


class RuleForm(forms.Form):
    scope = forms.CharField(max_length=32, initial="*")
    action = forms.ChoiceField(choices=[("deny", "deny"), ("allow", "allow")])
    hours = forms.IntegerField(min_value=1, max_value=MAX_QUARANTINE_HOURS, required=False,
                               initial=24)
    remove = forms.BooleanField(required=False, help_text="Remove the rule instead")
    reason = forms.CharField(max_length=200)
