from django.apps import AppConfig


class EventsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "events"

    def ready(self) -> None:
        # Verification codes leave through the real channels in live mode; enrollment,
        # which may not import the channels, only knows the sandbox outbox.
        from events.verification import install_verification_sender

        install_verification_sender()
