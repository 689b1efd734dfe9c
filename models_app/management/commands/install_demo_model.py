from django.core.management.base import BaseCommand

from models_app.services import demo_model_install


class Command(BaseCommand):
    help = "Convert the bundled SmolLM2-135M-Instruct demo model once and register it."

    def handle(self, *args, **options) -> None:
        model = demo_model_install()
        self.stdout.write(f"Demo model ready: {model.display_name} in {model.local_dir}")
