"""The user's own target settings for a runner's private config folder: read, never written, quiet unless --log.

A runner gets a private ``YOLO_CONFIG_DIR`` so that nothing it does writes to the user's config folder. Ultralytics
then starts from its defaults (``sync=True``: analytics events; on 8.0 TensorBoard and W&B on), so the runner gets a
copy of the user's settings file instead, with analytics and every logging integration off unless the user asked
for them (``--log``). Where the file is and what it is called are the target's facts (``Runtime.settings_files``);
the folder rules below are Ultralytics' ``get_user_config_dir``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .runners.yf_facts import release

CONFIG_SUBDIR = "Ultralytics"  # what Ultralytics appends to the OS config home


def settings_layout(facts: dict) -> tuple[str, bool] | None:
    """(the settings file's path under $YOLO_CONFIG_DIR, whether XDG_CONFIG_HOME counts) for the target's release."""
    rows = facts.get("settings_files") or ()
    if not rows:
        return None
    version = facts.get("version")
    fitting = [row for row in rows if version is None or release(version) >= release(row[0])]
    _, relpath, xdg = (fitting or rows[:1])[-1]
    return relpath, xdg


def user_settings_file(facts: dict, env: dict[str, str], home: Path, platform: str = sys.platform) -> Path | None:
    """Where the target reads the user's settings from, as Ultralytics' ``get_user_config_dir`` decides it."""
    layout = settings_layout(facts)
    if layout is None:
        return None
    relpath, xdg = layout
    if env.get("YOLO_CONFIG_DIR"):
        return Path(env["YOLO_CONFIG_DIR"]).expanduser() / relpath
    if platform.startswith("win"):
        config_home = home / "AppData" / "Roaming"
    elif platform == "darwin":
        config_home = home / "Library" / "Application Support"
    else:
        config_home = Path(env["XDG_CONFIG_HOME"]) if xdg and env.get("XDG_CONFIG_HOME") else home / ".config"
    return config_home / CONFIG_SUBDIR / Path(relpath).name


def _load(path: Path) -> dict | None:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else YAML(typ="safe", pure=True).load(text)
    except (OSError, ValueError, YAMLError):
        return None
    return data if isinstance(data, dict) else None


def _dump(data: dict, path: Path) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        return
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.representer.sort_base_mapping_type_on_output = False  # the user's order, as Ultralytics writes it
    with path.open("w", encoding="utf-8") as f:
        yaml.dump(data, f)


def private_settings(facts: dict, config_dir: Path, *, log: bool, env: dict[str, str] | None = None,
                     home: Path | None = None) -> Path | None:
    """Put the user's settings file (if any) where the target looks in ``config_dir``; returns the copy.

    Without ``log``, every setting in ``quiet_settings`` the file has is False in the copy. A file that is missing
    or unreadable is not copied: the target starts from its defaults and the runner turns those off.
    """
    env = os.environ if env is None else env
    source = user_settings_file(facts, env, Path.home() if home is None else home)
    if source is None or not source.is_file():
        return None
    copy = config_dir / settings_layout(facts)[0]
    if log:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        return copy
    data = _load(source)
    if data is None:
        return None
    quiet = set(facts["quiet_settings"])
    copy.parent.mkdir(parents=True, exist_ok=True)
    _dump({key: False if key in quiet and isinstance(value, bool) else value for key, value in data.items()}, copy)
    return copy
