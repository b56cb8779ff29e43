"""Validating webhook bodies into event models: what ``events.parse_event`` does, apart from
what the spec shapes (the event types, where each model lives, the union's type), which
``events`` holds.

Bodies are validated in two tiers, chosen by measurement (see the benchmarks):
1. At first, by the compiled validator of the body's own model, picked by the event type the
   body starts with. A model is built when its event type is first seen, so the first event
   of a process pays for one model (and what it reaches), never for all of them.
2. Once the union of all models exists, by the union: it picks the model inside one compiled
   call, which is cheaper than picking it here. It is built after ``events.PROMOTE_AFTER``
   events, on ``preload()``, or to answer a body the first tier could not. The threshold is
   where the time saved per event has paid for building the union (the ski-rental rule), so
   a process that sees a few good events never builds it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import importlib
import itertools
import os
import re
import sys
import threading
import types
import typing
import weakref

import pydantic_core

from . import errors

if typing.TYPE_CHECKING:
    from . import _base

# pydantic-core's JSON parser refuses documents nested deeper than this (a fixed limit that
# guards its stack); no incident.io payload comes near it.
MAX_JSON_DEPTH: typing.Final = 200
# Only for bodies that start some other way (pretty-printed, say): compiled on first use.
_SNIFF: typing.Final = r'\A\s*\{\s*"%s"\s*:\s*"([A-Za-z0-9_.\-]{1,200})"'
Body: typing.TypeAlias = (
    bytes | bytearray | str | collections.abc.Mapping[str, typing.Any]
)


# Held while a model's module is imported through the package (its attributes, ``models``,
# EVENT_MODELS, the parser). A fork waits for it (see _before_fork): a module half run by
# another thread at the fork would leave its import lock held for ever in the child.
_LOADING = threading.RLock()


def load_module(name: str) -> types.ModuleType:
    """``importlib.import_module``, safe across a fork (the package's lazy names use it)."""
    with _LOADING:
        return importlib.import_module(name)


@dataclasses.dataclass(frozen=True)
class Envelope:
    """How the vendor wraps its events, as the generator read it from the spec (inferred or
    configured: codegen/envelopes.py): where a delivery names its event type, where the
    payload sits, which header identifies the delivery and how it is signed."""

    # "incident.io", "standard-webhooks", "github", or "custom" (fields set one by one).
    kind: str
    # The body property naming the event type (``event_type``, ``type``), or None when a
    # header does.
    type_field: str | None
    # That header (lower case), and the body property that narrows it where the spec says
    # so per webhook (GitHub's ``issues`` + ``opened``).
    type_header: str | None
    action_field: str | None
    # "event-key" (the property named after the event type, as incident.io sends it),
    # "body" (the whole body), or the property holding the payload (``data``).
    payload: str
    # The header whose value identifies a delivery across retries (lower case).
    id_header: str
    # "standard-webhooks" (``webhook-signature``) or "github" (``x-hub-signature-256``).
    signature: str

    @property
    def headers(self) -> tuple[str, ...]:
        """The headers a delivery needs to be verified and read again later."""
        signed = (
            ("x-hub-signature-256",)
            if self.signature == "github"
            else ("webhook-timestamp", "webhook-signature")
        )
        named = (self.type_header,) if self.type_header else ()
        return (self.id_header, *signed, *named)


def lookup_header(headers: collections.abc.Mapping[str, str], name: str) -> object:
    """Header ``name`` (lower case) of a mapping in any case, as the mapping holds it."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return value


class EventModels(collections.abc.Mapping[str, "type[_base.WebhookModel]"]):
    """Event type -> model class, loading each class (with only the models it reaches) on
    first lookup. ``where``: event type -> (module, class) in ``package``'s models."""

    def __init__(
        self, where: collections.abc.Mapping[str, tuple[str, str]], package: str
    ) -> None:
        self._where = where
        self._package = package
        self._by_class = {
            (f"{package}.models.{module}", name): event_type
            for event_type, (module, name) in where.items()
        }

    def event_type_of(self, event: object) -> str:
        """The event type whose model ``event`` is an instance of."""
        cls = type(event)
        try:
            return self._by_class[(cls.__module__, cls.__qualname__)]
        except KeyError:
            raise TypeError(f"{cls.__qualname__} is not an event model") from None

    def __getitem__(self, event_type: str) -> type[_base.WebhookModel]:
        module, name = self._where[event_type]
        model: type[_base.WebhookModel] = getattr(
            load_module(f"{self._package}.models.{module}"), name
        )
        return model

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._where

    def __iter__(self) -> collections.abc.Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __repr__(self) -> str:
        return f"EVENT_MODELS({sorted(self._where)!r})"


class Parser:
    """One package's validators, built as they are needed (see the module docstring)."""

    def __init__(
        self,
        models: collections.abc.Mapping[str, type[_base.WebhookModel]],
        envelope: Envelope,
    ) -> None:
        self.models = models
        self.envelope = envelope
        field = envelope.type_field
        # Where the tag's value starts in a body that begins ``{"<field>":"`` (or with a
        # space after the colon, as ``json.dumps`` writes it).
        self.tag_at = len(b'{"' + field.encode() + b'":"') if field else 0
        # Header values whose webhooks are told apart by the body's action.
        self.with_actions = frozenset(
            event_type.partition(".")[0] for event_type in models if "." in event_type
        )
        # The union's compiled validator, once built; then it validates every body.
        self.union: typing.Any = None
        # How many times the union's adapter was built: once, whatever the threads.
        self.unions_built = 0
        # Each seen event type's compiled validator, by the tag's bytes as a body carries them.
        self.by_tag: dict[bytes, typing.Any] = {}
        # Held while a model or the union is built: threads that see a new event type at
        # once build it once, and never see it half built.
        self.building = threading.RLock()
        self.count = itertools.count(1).__next__
        _PARSERS.add(self)

    def union_type(self) -> typing.Any:
        import pydantic

        models = tuple(self.models.values())
        if len(models) == 1:
            return models[0]
        union = typing.Union[models]  # type: ignore[valid-type]  # noqa: UP007 (a runtime tuple)
        if self.envelope.type_field is None:
            return union  # told apart by a header: parsing never validates against it
        return typing.Annotated[
            union, pydantic.Field(discriminator=self.envelope.type_field)
        ]

    def preload(self) -> None:
        if self.envelope.type_field is None:
            for event_type in self.models:
                self.validator(event_type)
        else:
            self.union_validator()

    def parse(
        self,
        data: Body,
        promote_after: int,
        headers: collections.abc.Mapping[str, str] | None = None,
    ) -> typing.Any:
        if self.envelope.type_header is not None:
            return self._parse_by_header(data, headers)
        # The hot path, kept to a few operations: bytes, as a receiver gets them.
        if type(data) is bytes:
            union = self.union
            if union is not None:
                try:
                    return union.validate_json(data)
                except pydantic_core.ValidationError as exc:
                    raise self.explain(exc, data) from exc
            # Bodies start ``{"event_type":"<type>"`` (or ``{"event_type": "<type>"``, as
            # ``json.dumps`` writes; ``type`` for Standard Webhooks): the bytes between the
            # quotes pick the validator. A body that only looks so fails in that model,
            # which checks the tag again, and goes on to the union, which is never wrong.
            by_tag, at = self.by_tag, self.tag_at
            validator = by_tag.get(data[at : data.find(b'"', at)]) or by_tag.get(
                data[at + 1 : data.find(b'"', at + 1)]
            )
            if validator is not None:
                try:
                    event = validator.validate_json(data)
                except pydantic_core.ValidationError:
                    return self.parse_with_union(
                        data
                    )  # it says why, in the words callers know
                if self.count() >= promote_after:
                    self.preload()
                return event
        return self._parse_slowly(data, promote_after)

    def _parse_slowly(self, data: Body, promote_after: int) -> typing.Any:
        """Every other input: the first body of each event type, text, decoded mappings,
        bodies that start some other way, and those that fail."""
        as_json = _is_text(data)
        return _read(self._parse_checked, data, as_json, promote_after)

    def _parse_checked(
        self, data: Body, as_json: bool, promote_after: int
    ) -> typing.Any:
        if self.union is None:
            event_type = self._sniff(data)
            validator = self.validator(event_type) if event_type is not None else None
            if validator is not None:
                try:
                    event = (
                        validator.validate_json(data)
                        if as_json
                        else validator.validate_python(data)
                    )
                except pydantic_core.ValidationError:
                    return self.parse_with_union(data)
                if self.count() >= promote_after:
                    self.preload()
                return event
        return self.parse_with_union(data)

    def _parse_by_header(
        self, data: Body, headers: collections.abc.Mapping[str, str] | None
    ) -> typing.Any:
        """An envelope whose header names the event (GitHub's): the header, and the body's
        action where webhooks of that header differ by it, pick the model."""
        name = self.envelope.type_header
        assert name is not None
        if headers is None:
            raise TypeError(
                f"this package's events are named by the {name} header: "
                "parse_event(body, headers=request_headers)"
            )
        _is_text(data)
        return _read(self._parse_headed, data, headers, name)

    def _parse_headed(
        self, data: Body, headers: collections.abc.Mapping[str, str], name: str
    ) -> typing.Any:
        value = lookup_header(headers, name)
        value = value.strip() if isinstance(value, str) else None
        if not value:
            raise errors.InvalidPayload(f"missing {name} header")
        event_type, decoded = value, None
        if value in self.with_actions:
            decoded = self._decoded(data)
            event_type = self._headed_type(
                value, decoded.get(self.envelope.action_field or "")
            )
        validator = self.validator(event_type)
        if validator is None:
            payload = decoded if decoded is not None else self._decoded(data)
            raise errors.UnknownEventType(event_type, payload)
        return self._validated(validator, data, event_type)

    def named_type(
        self, data: Body, headers: collections.abc.Mapping[str, str] | None = None
    ) -> str:
        """The event type ``data`` names, as parsing would pick its model, read without
        validating the payload or building it: "" when it names none. InvalidPayload only
        for a body that is not JSON. (Validating a 4.4 KB payload was a third of the CPU
        of storing a delivery in a busy server, and the worker validates it again.)"""
        envelope = self.envelope
        if envelope.type_header is None:
            return self._named(data, envelope.type_field or "")
        value = lookup_header(headers or {}, envelope.type_header)
        value = value.strip() if isinstance(value, str) else ""
        # Read even when the action is not needed: a body that is not JSON is refused.
        action = self._named(data, envelope.action_field or "")
        if not value or value not in self.with_actions:
            return value
        return self._headed_type(value, action or None)

    def _headed_type(self, value: str, action: object) -> str:
        """The event type of header ``value`` whose webhooks differ by the body's action:
        ``value.action`` when the spec has it, or when ``value`` alone is no webhook."""
        if isinstance(action, str) and f"{value}.{action}" in self.models:
            return f"{value}.{action}"
        if value not in self.models and isinstance(action, str):
            return f"{value}.{action}"
        return value

    def _named(self, data: Body, field: str) -> str:
        """The string at ``field`` of the JSON object ``data`` ("" if none)."""
        if isinstance(data, collections.abc.Mapping):
            named = data.get(field)
            return named if isinstance(named, str) else ""
        try:
            found = _named_field(field).validate_json(data)
        except pydantic_core.ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
                raise self.explain(exc, data) from exc
            return ""  # not an object, or the field is not a string
        named = found.get(field, "")
        return named if isinstance(named, str) else ""

    def _decoded(self, data: Body) -> collections.abc.Mapping[str, typing.Any]:
        """The body as a mapping; a body that is not a JSON object fails as any other body
        does (``json_invalid`` included, which a receiver answers 400)."""
        if isinstance(data, collections.abc.Mapping):
            return data
        try:
            decoded: dict[str, typing.Any] = _json_object().validate_json(data)
        except pydantic_core.ValidationError as exc:
            raise self.explain(exc, data) from exc
        return decoded

    def _sniff(self, data: Body) -> str | None:
        """The event type a body says it is, if it starts with it (bytes, text) or has it."""
        field = self.envelope.type_field or ""
        if isinstance(data, collections.abc.Mapping):
            event_type = data.get(field)
            return event_type if isinstance(event_type, str) else None
        text, raw = _sniffer(field)
        if isinstance(data, str):
            found = text.match(data)
            return found.group(1) if found is not None else None
        found_bytes = raw.match(data)
        return found_bytes.group(1).decode() if found_bytes is not None else None

    def validator(self, event_type: str) -> typing.Any:
        tag = event_type.encode()
        validator = self.by_tag.get(tag)
        if validator is None and event_type in self.models:
            with self.building:
                model = self.models[event_type]
                if not model.__pydantic_complete__:
                    model.model_rebuild()
                validator = self.by_tag[tag] = model.__pydantic_validator__
        return validator

    def union_validator(self) -> typing.Any:
        """The union's compiled validator, built on first need, under the lock (two threads
        must not both build it)."""
        if self.union is None:
            with self.building:
                if self.union is None:
                    import pydantic

                    self.unions_built += 1
                    self.union = pydantic.TypeAdapter(self.union_type()).validator
        return self.union

    def parse_with_union(self, data: Body) -> typing.Any:
        """Bodies that do not start with a known ``event_type``, and every failure: the
        union of all models (built on first need) gives the answer and the error."""
        return self._validated(self.union_validator(), data)

    def _validated(
        self, validator: typing.Any, data: Body, known: str | None = None
    ) -> typing.Any:
        """``data`` validated (as JSON, or as a decoded mapping); a failure explained in the
        words callers know. ``known``: the event type, when a header named it."""
        try:
            if isinstance(data, collections.abc.Mapping):
                return validator.validate_python(data)
            return validator.validate_json(data)
        except pydantic_core.ValidationError as exc:
            raise self.explain(exc, data, known) from exc

    def explain(
        self, exc: pydantic_core.ValidationError, data: Body, known: str | None = None
    ) -> errors.WebhookError:
        """``known``: the event type, when a header named it."""
        try:
            return self._explained(exc, data, known)
        # Any input at all: only WebhookError may leave parse_event.
        except Exception as failure:  # noqa: BLE001
            return _unreadable(failure)

    def _explained(
        self, exc: pydantic_core.ValidationError, data: Body, known: str | None
    ) -> errors.WebhookError:
        # Only failures reach here, so the body may be decoded a second time without
        # slowing down the events that validate.
        for error in exc.errors(include_url=False):
            if error["type"] == "json_invalid":
                reason = str(error.get("ctx", {}).get("error", ""))
                if "recursion limit" in reason:
                    return errors.InvalidPayload(
                        f"the body nests deeper than the JSON parser's limit of {MAX_JSON_DEPTH} "
                        f"levels ({reason})",
                        exc,
                    )
                return errors.InvalidPayload(
                    f"the body is not valid JSON ({reason})", exc
                )
        payload: typing.Any = (
            data
            if isinstance(data, collections.abc.Mapping)
            else pydantic_core.from_json(data)
        )
        if not isinstance(payload, collections.abc.Mapping):
            return errors.InvalidPayload("the body is not a JSON object", exc)
        event_type = (
            known if known is not None else payload.get(self.envelope.type_field or "")
        )
        if isinstance(event_type, str) and event_type not in self.models:
            return errors.UnknownEventType(event_type, payload)
        details = "; ".join(
            f"{_location(error['loc'], event_type)}: {error['msg']}"
            for error in exc.errors(include_url=False)[:5]
        )
        name = event_type if isinstance(event_type, str) else "webhook"
        count = exc.error_count()
        return errors.InvalidPayload(
            f"invalid {name} payload ({count} error{'s'[:count != 1]}): {details}",
            exc,
            event_type=event_type if isinstance(event_type, str) else "",
        )


# A lock another thread holds at a fork stays held for ever in the child (a pre-fork server,
# multiprocessing with fork), and what it guards stays half done. So the forking thread
# takes every lock under which a model is loaded or built, in the order the builders take
# them (a parser's, then the import's, then pydantic's global lock for deferred models),
# forks, and lets go in both processes: the child starts with nothing half built.
_PARSERS: weakref.WeakSet[Parser] = weakref.WeakSet()
_HELD: list[typing.Any] = []


def _before_fork() -> None:
    held = [parser.building for parser in list(_PARSERS)]
    held.append(_LOADING)
    # pydantic's own: held while a model with defer_build is built, from any entry
    # (``model_validate`` included); a private name, so only if it is there.
    pydantic_main = sys.modules.get("pydantic.main")
    rebuilding = getattr(pydantic_main, "_rebuild_lock", None)
    if rebuilding is not None and hasattr(rebuilding, "acquire"):
        held.append(rebuilding)
    for lock in held:
        lock.acquire()
    _HELD[:] = held


def _after_fork() -> None:
    for lock in reversed(_HELD):
        lock.release()
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork
    )


def _is_text(data: Body) -> bool:
    """Whether ``data`` is JSON text (bytes or str) rather than a decoded mapping; a
    TypeError for anything else."""
    if isinstance(data, bytes | bytearray | str):
        return True
    if not isinstance(data, collections.abc.Mapping):
        raise TypeError(
            "parse_event takes the body as bytes or str, or as a decoded mapping, "
            f"not {type(data).__name__}"
        )
    return False


def _read(parse: typing.Callable[..., typing.Any], *args: typing.Any) -> typing.Any:
    """``parse(*args)``, where only WebhookError may leave: whatever else the input makes a
    parser raise (text with a lone surrogate, a mapping whose methods fail, ...) is a body
    that cannot be read, said as such."""
    try:
        return parse(*args)
    except errors.WebhookError:
        raise
    except Exception as exc:
        raise _unreadable(exc) from exc


def _unreadable(exc: Exception) -> errors.InvalidPayload:
    return errors.InvalidPayload(
        f"the body cannot be read ({type(exc).__name__}: {exc})"[:500]
    )


@functools.cache
def _json_object() -> typing.Any:
    return pydantic_core.SchemaValidator(pydantic_core.core_schema.dict_schema())


@functools.cache
def _named_field(field: str) -> typing.Any:
    """A validator of a JSON object with an optional string at ``field``: the whole body
    is parsed (so malformed JSON fails), and nothing else of it becomes Python objects.
    """
    schema = pydantic_core.core_schema
    return pydantic_core.SchemaValidator(
        schema.typed_dict_schema(
            {field: schema.typed_dict_field(schema.str_schema(), required=False)},
            extra_behavior="ignore",
        )
    )


@functools.cache
def _sniffer(field: str) -> tuple[re.Pattern[str], re.Pattern[bytes]]:
    text = _SNIFF % re.escape(field)
    return re.compile(text), re.compile(text.encode())


def _location(loc: tuple[int | str, ...], event_type: object) -> str:
    # The union reports the tag it chose as the first step; the body has no such level.
    if loc and loc[0] == event_type:
        loc = loc[1:]
    return ".".join(str(part) for part in loc) or "(body)"
