from django.apps import AppConfig


class SettlementsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlements"

    def ready(self) -> None:
        # A program's baseline methods are checked by the library that will run them, so a
        # parameter it would refuse is a form error, not a failed performance computation.
        from enrollment.models import set_baseline_method_check
        from settlements.baselines import spec_from_preset

        set_baseline_method_check(spec_from_preset)
