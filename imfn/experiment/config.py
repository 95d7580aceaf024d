"""The merged config, read and checked against the schema before anything else: renamed keys first (a message
naming the new key), then ``workflow/schemas/config.schema.yaml`` with the failing key named however deep it is."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

import yaml

from imfn.experiment.renamed import renamed_key_messages

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


class ConfigError(ValueError):
    """The config asks for something the pipeline cannot run: raised before any job, naming the key."""


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """``base`` with ``override`` on top, nested blocks merged key by key (how Snakemake merges a --configfile into
    config/config.yaml, and how a variant's overrides merge into its base settings)."""
    merged = dict(base)
    for key, value in override.items():
        both = isinstance(value, Mapping) and isinstance(merged.get(key), Mapping)
        merged[key] = deep_merge(merged[key], value) if both else value
    return merged


def read_config(*overrides: Path | Mapping, base: Path = DEFAULT_CONFIG) -> dict:
    """config/config.yaml with each of ``overrides`` (a YAML file or a dict) merged over it in order, as
    ``snakemake --configfile`` merges them."""
    config = yaml.safe_load(Path(base).read_text())
    for override in overrides:
        block = override if isinstance(override, Mapping) else yaml.safe_load(Path(override).read_text()) or {}
        config = deep_merge(config, block)
    return config


def _where(path) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


@functools.cache
def _validator():
    import jsonschema

    return jsonschema.Draft202012Validator(yaml.safe_load(SCHEMA.read_text()))


def schema_errors(config: Mapping) -> list[str]:
    """Every place ``config`` breaks the schema, each as ``<dotted key>: <what is wrong>``, deepest first."""
    validator = _validator()
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), [*map(str, e.absolute_path)]))
    messages = []
    for error in errors:
        deepest = error
        while deepest.context:  # a failed oneOf / anyOf: the branch that got furthest says what is wrong
            deepest = max(deepest.context, key=lambda e: len(e.absolute_path))
        messages.append(f"{_where(deepest.absolute_path)}: {deepest.message}")
    return messages


def check_config(config: Mapping) -> None:
    """Stop with :class:`ConfigError` when ``config`` uses a renamed key, or breaks the schema (every problem
    named by its key)."""
    renamed = renamed_key_messages(config)
    if renamed:
        raise ConfigError("\n".join(renamed))
    problems = schema_errors(config)
    if problems:
        raise ConfigError(f"Error validating config ({SCHEMA.relative_to(REPO)}):\n  " + "\n  ".join(problems))
