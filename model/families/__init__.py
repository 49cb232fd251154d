"""Model families, one module each; importing this package registers all of them.

`get_family(kind)` is how everything outside this package reaches a family.
"""

from model.families import bigram, gru, mlp, transformer, wavenet  # noqa: F401  (registers)
from model.families.base import CharModel, FamilyConfig, WindowModel, count_parameters
from model.families.registry import Family, build_model, family_kinds, get_family

__all__ = [
    "CharModel",
    "Family",
    "FamilyConfig",
    "WindowModel",
    "build_model",
    "count_parameters",
    "family_kinds",
    "get_family",
]
