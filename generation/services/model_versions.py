"""Writes on the model registry that are not a training run's (those are in handlers/training.py)."""

from __future__ import annotations

from pathlib import Path

from generation.models import ModelVersion


def model_register_base(*, path: Path, name: str) -> tuple[ModelVersion, bool]:
    """Register a local model directory as a base ModelVersion (idempotent on its path)."""
    return ModelVersion.objects.get_or_create(role=ModelVersion.Role.BASE, path=str(path), defaults={"name": name})
