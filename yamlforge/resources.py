"""Locates the data that ships with yamlforge (templates, module specs) and its cache, and renders templates."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``templates``, ``module_specs`` or ``examples``: inside the package in a wheel, at the repo top in a checkout."""
    packaged = _PACKAGE / name
    return packaged if packaged.is_dir() else _PACKAGE.parent / name


def cache_dir() -> Path:
    """Where yamlforge keeps what it downloads, its pristine checkouts, its lock files and what is worth not
    recomputing (outside any repo)."""
    return Path(os.environ.get("YAMLFORGE_CACHE", Path.home() / ".cache" / "yamlforge"))


TEMPLATES_DIR = data_dir("templates")
SPECS_DIR = data_dir("module_specs")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return _environment().get_template(template).render(**context)


def render_string(source: str, **context) -> str:
    """Render a template given as text (a spec's ``custom`` branch body)."""
    return _environment().from_string(source).render(**context)
