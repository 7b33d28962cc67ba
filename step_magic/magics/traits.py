"""``StepMagics`` traits made from the catalogue of settings (``core.catalog``).

``%config StepMagics.top_p = 0.9`` exists because ``top_p`` is in the catalogue: the trait takes
its type, default and help from there. A value out of range is not refused here (traitlets'
messages are a paragraph long) but when a call starts, in the same one line a keyword gets.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, CFloat, CInt, Enum, TraitType, Unicode

from step_magic.core.catalog import BY_NAME


def setting_trait(name: str) -> Any:
    """The configurable trait of the setting ``name``: its type, default and help."""
    setting = BY_NAME[name]
    common: dict[str, Any] = {"help": setting.described, "allow_none": setting.nullable}
    trait: TraitType[Any, Any]
    if setting.kind is bool:
        trait = Bool(setting.default, **common)
    elif setting.kind is int:
        trait = CInt(setting.default, **common)
    elif setting.kind is float:
        trait = CFloat(setting.default, **common)
    elif setting.choices is not None and not setting.nullable:
        trait = Enum(list(setting.choices), setting.default, **common)
    else:  # an effort is checked against the model when a call starts, in one line
        trait = Unicode(setting.default, **common)
    return trait.tag(config=True)
