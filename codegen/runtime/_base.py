"""Base classes shared by every generated model."""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

_OPENED = "incident_webhooks_open_union"


def _open_unions(schema: Any) -> Any:
    """Let every discriminated union (``oneOf`` + ``discriminator``) accept a variant added
    upstream after generation: a known tag still validates strictly against its model, and
    an unknown tag arrives as the plain dict it was sent as, instead of failing the event.
    """
    if isinstance(schema, list):
        return [_open_unions(item) for item in schema]
    if not isinstance(schema, dict) or schema.get("metadata", {}).get(_OPENED):
        return schema
    opened = {key: _open_unions(value) for key, value in schema.items()}
    if schema.get("type") != "tagged-union" or not isinstance(
        schema.get("discriminator"), str
    ):
        return opened
    known = frozenset(str(tag) for tag in schema["choices"])
    field = schema["discriminator"]

    def unknown_variant(value: dict[str, Any]) -> dict[str, Any]:
        if str(value.get(field)) in known:
            raise ValueError(f"does not match the {value.get(field)!r} variant")
        return value

    fallback = core_schema.no_info_after_validator_function(
        unknown_variant,
        core_schema.dict_schema(core_schema.str_schema(), core_schema.any_schema()),
    )
    return core_schema.union_schema(
        [opened, fallback], mode="left_to_right", metadata={_OPENED: True}
    )


class WebhookModel(BaseModel):
    """Base of every model in this package.

    incident.io adds properties to payloads without notice, so unknown properties are kept
    (in ``model_extra``, and again on ``model_dump``) rather than rejected or dropped.
    """

    # No protected namespaces: a payload property named like a pydantic method is renamed
    # (``model_dump_``, aliased to its JSON name), and that name must not warn at import.
    # Deferred build: a model's validator is compiled on its first use, so the models an
    # event model reaches are compiled once, inside it, not once each on the way.
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, protected_namespaces=(), defer_build=True
    )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema: core_schema.CoreSchema = handler(source)
        # Only a model with a discriminated field has a union to open (the model generator
        # always writes the discriminator on the field); the rest are left as built.
        if any(f.discriminator for f in cls.__pydantic_fields__.values()):
            schema = _open_unions(schema)
        return schema


class StrEnum(enum.StrEnum):
    """A string enum that also accepts values it does not list.

    incident.io adds enum values as a compatible change. A known value parses to its member;
    an unknown one parses to a member-like value of the same class (equal to the string,
    ``is_known`` false) instead of failing the whole event.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        return self._name_ in type(self).__members__


class IntEnum(enum.IntEnum):
    """The integer counterpart of :class:`StrEnum`."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = str(value)
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        return self._name_ in type(self).__members__
