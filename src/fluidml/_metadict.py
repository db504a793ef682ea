"""MetaDict, imported without its side effect: metadict replaces ``warnings.showwarning`` for the
whole process when it is imported; fluidml puts the user's hook back."""

import warnings

_showwarning = warnings.showwarning
from metadict import MetaDict  # noqa: E402

warnings.showwarning = _showwarning

__all__ = ["MetaDict"]
