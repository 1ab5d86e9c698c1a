"""Where configs come from: evalkit's own conf/ (package data) and the user's config folders before it.

`config_dirs()` is the one list of folders; every lookup (model files, task files, gate suites, probes,
baselines, sweep suites, and Hydra's search path) goes through it, so a user's `model/my.yaml` is seen
the same by `load_model_config`, `model_names`, Hydra and a suite that names it.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Sequence

from evalkit import EvalkitError

CONF_DIR = Path(str(files("evalkit") / "conf"))  # package data: an installed package is a folder on disk
CONFIG_PATH_ENV = "EVALKIT_CONFIG_PATH"  # the user's config folders, searched before CONF_DIR (--config-dir sets it)
USER_PARTS = ("model/", "tasks/", "check/", "suites.yaml", "hydra/launcher/")  # what a user's config folder may hold


def config_dirs() -> list[Path]:
    """The folders configs are read from, in order, the first file found winning: each folder of
    $EVALKIT_CONFIG_PATH (os.pathsep-separated; `--config-dir` prepends to it), then evalkit's own conf/.
    Each mirrors conf/: model/*.yaml, tasks/*.yaml, check/*.yaml, check/probes/*.yaml,
    check/baselines/<suite>.json, suites.yaml, hydra/launcher/*.yaml. Every lookup goes through here."""
    dirs = []
    for part in os.environ.get(CONFIG_PATH_ENV, "").split(os.pathsep):
        if not part.strip():
            continue
        folder = Path(part).expanduser().resolve()
        if not folder.is_dir():
            raise EvalkitError(f"config folder {part} ({CONFIG_PATH_ENV} or --config-dir) does not exist")
        if (folder / "config.yaml").exists():  # Hydra would take it for evalkit's own primary config
            raise EvalkitError(f"config folder {folder} has a config.yaml: evalkit reads only {', '.join(USER_PARTS)} "
                               f"from a user's config folder (set other keys on the command line)")
        if folder != CONF_DIR and folder not in dirs:
            dirs.append(folder)
    return [*dirs, CONF_DIR]


def add_config_dirs(folders: list[str]) -> None:
    """Put folders (`--config-dir`) in front of the search path, for this process and the ones it starts."""
    if folders:
        rest = os.environ.get(CONFIG_PATH_ENV, "")
        absolute = [str(Path(f).expanduser().resolve()) for f in folders]
        os.environ[CONFIG_PATH_ENV] = os.pathsep.join([*absolute, *([rest] if rest else [])])
    config_dirs()  # a folder that does not exist fails now, with its name


def find_config(relative: str, dirs: Sequence[Path] | None = None) -> Path | None:
    """The first config folder's file at `relative` (e.g. "model/minilm.yaml"), or None; `dirs` instead of
    `config_dirs()` (e.g. `(CONF_DIR,)`: the file as evalkit ships it)."""
    return next((d / relative for d in (config_dirs() if dirs is None else dirs) if (d / relative).is_file()), None)


def config_files(subdir: str, suffix: str = ".yaml") -> dict[str, Path]:
    """File stem -> file for every `<subdir>/*<suffix>` in the config folders, the first folder's winning."""
    found: dict[str, Path] = {}
    for folder in config_dirs():
        for path in sorted((folder / subdir).glob(f"*{suffix}")):
            found.setdefault(path.stem, path)
    return dict(sorted(found.items()))


def shown(path: Path) -> str:
    """A config file as messages name it: conf/... for evalkit's own files, the full path for a user's."""
    try:
        return str(Path("conf") / path.relative_to(CONF_DIR))
    except ValueError:
        return str(path)
