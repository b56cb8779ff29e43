"""Base of the models whose value is not an object; imported only by such models."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from pydantic import ConfigDict, GetCoreSchemaHandler
from pydantic_core import core_schema

from ._base import _open_unions

RootT = TypeVar("RootT")


class RootModel(pydantic.RootModel[RootT]):
    """Base of every model whose value is not an object (a list, a union of variants):
    opens its discriminated unions like :class:`WebhookModel` does."""

    model_config = ConfigDict(defer_build=True)

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
