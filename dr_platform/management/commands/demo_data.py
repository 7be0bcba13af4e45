from django.core.management.base import BaseCommand

from dr_platform.demo import DEMO_PASSWORD, demo_logins, load_demo_data


class Command(BaseCommand):
    help = "Load the demo data (idempotent: running it again creates nothing new)."

    def handle(self, *args, **options) -> None:
        load_demo_data()
        self.stdout.write(self.style.SUCCESS("Demo data loaded."))
        for login in demo_logins():
            self.stdout.write(f"  {login.username:<10} {DEMO_PASSWORD}  ({login.description})")
