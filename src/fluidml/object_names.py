"""Names a task may not save objects under, on every store: the stores' own bookkeeping names, and
names whose file would replace a run's ``config.json`` or ``fluidml_info.json``."""

from typing import Any, Optional

__all__ = ["RESERVED_RESULT_NAMES", "check_object_name"]

#: Object names the stores use for their own bookkeeping; ``Task.save`` refuses them.
RESERVED_RESULT_NAMES = frozenset({"fluidml_info", ".saved_results"})
#: Files a file store keeps in a run directory; no object may be saved in their place.
_RESERVED_FILES = frozenset({"config.json", "fluidml_info.json"})
#: The file name extension of each built-in type (None: the default, pickle).
_BUILTIN_EXTENSIONS = {None: ".p", "pickle": ".p", "json": ".json", "text": ".txt", "event": ""}


def check_object_name(unique_name: str, name: Any, type_: Optional[str], sub_dir: Optional[str]) -> None:
    """Refuses, on every store, names the stores use for their own data: the bookkeeping names,
    and a name whose file (with a built-in type) would replace a run's config.json or info."""
    if name in RESERVED_RESULT_NAMES:
        raise ValueError(f'Task "{unique_name}": "{name}" is reserved for fluidml; save under another name.')
    extension = _BUILTIN_EXTENSIONS.get(type_)
    file_name = f"{name}{extension}" if extension is not None and isinstance(name, str) else None
    if file_name in _RESERVED_FILES and sub_dir in (None, "", "."):
        raise ValueError(f'Task "{unique_name}": the object "{name}" of type {type_ or "pickle"!r} would be '
                         f"saved as {file_name} and replace the run's own {file_name}; save it under another name "
                         f"or type.")
