"""The generated package, as a user sees it, for every webhook in spec/webhooks.json."""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import json
import sys
from typing import Any

import pydantic
import pydantic_core
import pytest
from conftest import SPEC, Recorder, spec_examples
from incident_webhooks import (
    EVENT_MODELS,
    AsyncWebhookHandlers,
    InvalidPayload,
    PrivateIncidentMembershipGrantedV1,
    PublicIncidentActionCreatedV1,
    UnknownEventType,
    WebhookError,
    WebhookHandlers,
    events,
    parse_event,
)
from incident_webhooks.events import event_type_of, event_type_of_body
from incident_webhooks.handlers import HANDLER_NAMES
from incident_webhooks.models import ActionV1Status

EXAMPLES = spec_examples()
GRANTED = "private_incident.membership_granted_v1"


def body(example: dict[str, Any]) -> bytes:
    return json.dumps(example).encode()


@functools.cache
def union_validator() -> Any:
    """The union's validator, built once for the module (the fixture installs it per test)."""
    return pydantic.TypeAdapter(events._PARSER.union_type()).validator


@pytest.fixture(autouse=True, params=["first tier", "union"])
def tier(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs in both of parse_event's tiers: each body by its own model's
    validator (never promoted), and the union of all models (as after PROMOTE_AFTER events
    or preload()). Both must give the same events and the same errors."""
    if request.param == "first tier":
        monkeypatch.setattr(events._PARSER, "union", None)
        monkeypatch.setattr(events, "PROMOTE_AFTER", sys.maxsize)
    else:
        monkeypatch.setattr(events._PARSER, "union", union_validator())
    return str(request.param)


def test_event_models_cover_every_webhook_in_the_spec() -> None:
    assert set(EVENT_MODELS) == set(EXAMPLES)
    assert len(EVENT_MODELS) >= 30
    assert EVENT_MODELS[GRANTED] is PrivateIncidentMembershipGrantedV1


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_example_parses_into_its_own_model(event_type: str) -> None:
    event = parse_event(body(EXAMPLES[event_type]))
    assert type(event) is EVENT_MODELS[event_type]
    assert event.event_type == event_type
    assert event.payload is not None


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_every_example_round_trips(event_type: str) -> None:
    event = parse_event(body(EXAMPLES[event_type]))
    dumped = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == EXAMPLES[event_type]


@pytest.mark.parametrize("event_type", sorted(EXAMPLES))
def test_dispatch_reaches_the_method_named_after_the_event_type(event_type: str) -> None:
    handlers = Recorder()
    event = parse_event(body(EXAMPLES[event_type]))
    handlers.dispatch(event)
    expected = "on_" + event_type.replace(".", "_")
    assert HANDLER_NAMES[event_type] == expected
    assert handlers.calls == [(expected, (event,))]


def test_handler_methods_default_to_doing_nothing_and_carry_the_spec_text() -> None:
    event = parse_event(body(EXAMPLES[GRANTED]))
    assert WebhookHandlers().dispatch(event) is None
    from codegen import loader, parser
    from codegen.emit.templates import handler_doc

    (hook,) = [h for h in parser.parse(loader.load_spec(SPEC), "spec").webhooks if h.event_type == GRANTED]
    doc = inspect.getdoc(WebhookHandlers.on_private_incident_membership_granted_v1)
    assert doc == handler_doc(hook)
    assert hook.summary in doc and hook.description in doc


def test_async_handlers_dispatch_to_coroutines() -> None:
    seen: list[Any] = []

    class Handlers(AsyncWebhookHandlers):
        async def on_private_incident_membership_granted_v1(
            self, event: PrivateIncidentMembershipGrantedV1
        ) -> None:
            seen.append(event.payload.user_id)

    asyncio.run(Handlers().dispatch(parse_event(body(EXAMPLES[GRANTED]))))
    asyncio.run(Handlers().handle(b'{"event_type": "new.thing_v1"}'))
    assert seen == ["abc123"]


def test_payload_is_reachable_by_attribute_and_by_its_spec_key() -> None:
    event = parse_event(body(EXAMPLES[GRANTED]))
    assert isinstance(event, PrivateIncidentMembershipGrantedV1)
    assert event.payload.incident_id == "abc123"
    assert event.payload.actor_user_id == "abc123"
    built = PrivateIncidentMembershipGrantedV1.model_validate(EXAMPLES[GRANTED])
    assert built == event


@pytest.mark.parametrize("kind", [bytes, bytearray, str, dict])
def test_parse_event_accepts_bytes_text_and_mappings(kind: type) -> None:
    example = EXAMPLES[GRANTED]
    data: Any = example if kind is dict else kind(body(example)) if kind is not str else json.dumps(example)
    assert isinstance(parse_event(data), PrivateIncidentMembershipGrantedV1)


def test_parse_event_validates_bytes_without_decoding_them_to_a_dict_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the body was decoded on the success path")

    monkeypatch.setattr(json, "loads", forbidden)
    monkeypatch.setattr(pydantic_core, "from_json", forbidden)
    assert isinstance(parse_event(body(EXAMPLES[GRANTED])), PrivateIncidentMembershipGrantedV1)


@pytest.mark.parametrize("data", [None, 42, [b"{}"], memoryview(b"{}")])
def test_anything_but_bytes_text_or_a_mapping_is_a_type_error_naming_it(data: Any) -> None:
    with pytest.raises(TypeError, match=type(data).__name__):
        parse_event(data)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b'{"event_type": "private_incident.membership_granted_v1", "x": {"id": 5}}', GRANTED),
        (b'{"x": [1, {"event_type": "nested"}], "event_type": "brand_new.thing_v9"}', "brand_new.thing_v9"),
        ('{"event_type": "text.v1"}', "text.v1"),
        ({"event_type": "mapping.v1"}, "mapping.v1"),
        (b'{"event_type": 5}', ""),
        (b'{"no_type": true}', ""),
        (b'["event_type"]', ""),
        (b'"event_type"', ""),
    ],
)
def test_event_type_of_body_reads_the_type_a_body_names_without_validating_it(data: Any, named: str) -> None:
    assert event_type_of_body(data) == named


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b'{"event_type": "a.v1", "x": [1, 2,', b'{"event_type": "a.v1"} trailing', b'{"event_type": "\xff"}',
     b"[" * 3000 + b"]" * 3000],
)
def test_event_type_of_body_refuses_what_is_not_json_as_parse_event_does(data: bytes) -> None:
    """The inbox answers 400 to these and stores nothing: the whole body is parsed, not
    only up to its event type."""
    with pytest.raises(InvalidPayload) as named:
        event_type_of_body(data)
    with pytest.raises(InvalidPayload) as parsed:
        parse_event(data)
    assert [e["type"] for e in named.value.errors] == ["json_invalid"]
    assert str(named.value) == str(parsed.value)


def test_event_type_of_body_is_what_parse_event_picks_for_every_example() -> None:
    for event_type, example in EXAMPLES.items():
        raw = body(example)
        assert event_type_of_body(raw) == event_type_of(parse_event(raw)) == event_type


def test_unknown_event_type_raises_with_the_type_and_the_raw_payload() -> None:
    raw = {"event_type": "private_incident.something_new_v9", "x": {"id": 1}}
    with pytest.raises(UnknownEventType) as caught:
        parse_event(json.dumps(raw))
    assert caught.value.event_type == "private_incident.something_new_v9"
    assert caught.value.payload == raw
    assert isinstance(caught.value, WebhookError)


def test_handle_sends_unknown_event_types_to_on_unknown() -> None:
    handlers = Recorder()
    handlers.handle(b'{"event_type": "brand_new.event_v1", "brand_new.event_v1": {}}')
    assert handlers.calls == [
        ("on_unknown", ("brand_new.event_v1", {"event_type": "brand_new.event_v1", "brand_new.event_v1": {}}))
    ]


def test_unknown_properties_are_accepted_and_kept_on_round_trip() -> None:
    raw = copy.deepcopy(EXAMPLES[GRANTED])
    raw["delivered_by"] = "svix"
    raw[GRANTED]["team_id"] = "T1"
    event = parse_event(json.dumps(raw))
    assert event.model_extra == {"delivered_by": "svix"}
    assert event.payload.model_extra == {"team_id": "T1"}
    assert event.model_dump(mode="json", by_alias=True, exclude_unset=True) == raw


def test_unknown_enum_value_still_parses_while_known_values_stay_typed() -> None:
    event_type = "public_incident.action_created_v1"
    raw = copy.deepcopy(EXAMPLES[event_type])
    known = parse_event(json.dumps(raw))
    assert isinstance(known, PublicIncidentActionCreatedV1)
    assert known.payload.status is ActionV1Status.outstanding
    assert known.payload.status.is_known

    raw[event_type]["status"] = "snoozed"
    unknown = parse_event(json.dumps(raw))
    assert isinstance(unknown, PublicIncidentActionCreatedV1)
    assert isinstance(unknown.payload.status, ActionV1Status)
    assert unknown.payload.status == "snoozed"
    assert not unknown.payload.status.is_known
    assert unknown.model_dump(mode="json", by_alias=True, exclude_unset=True) == raw


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda raw: raw[GRANTED].pop("incident_id"), "incident_id: Field required"),
        (lambda raw: raw[GRANTED].update(user_id=42), "user_id: Input should be a valid string"),
        (lambda raw: raw.pop(GRANTED), f"{GRANTED}: Field required"),
    ],
    ids=["missing-required-field", "wrong-type", "missing-payload"],
)
def test_missing_required_fields_and_wrong_types_fail(change: Any, fragment: str) -> None:
    raw = copy.deepcopy(EXAMPLES[GRANTED])
    change(raw)
    with pytest.raises(InvalidPayload) as caught:
        parse_event(json.dumps(raw))
    assert fragment in str(caught.value)
    assert caught.value.errors, "the validation details are kept"
    assert isinstance(caught.value, WebhookError)


@pytest.mark.parametrize(
    "data", [b"", b"{", b"[1, 2]", b'"text"', b'{"no_event_type": 1}', b'{"event_type": 5}']
)
def test_bodies_that_are_not_webhook_events_raise_invalid_payload(data: bytes) -> None:
    with pytest.raises(InvalidPayload):
        parse_event(data)


def test_the_receiving_side_loads_on_first_use_not_at_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, incident_webhooks as w\n"
        "before = 'incident_webhooks.receiver' in sys.modules\n"
        "receiver = w.WebhookReceiver\n"
        "print(before, 'incident_webhooks.receiver' in sys.modules, receiver.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["False", "True", "WebhookReceiver"]


def test_an_unknown_package_attribute_is_an_attribute_error() -> None:
    import incident_webhooks

    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = incident_webhooks.no_such_thing  # type: ignore[attr-defined]


def test_model_names_come_from_the_spec_and_are_never_numbered() -> None:
    import ast
    import re

    from conftest import ROOT, SPEC

    doc = json.loads(SPEC.read_text())
    known = set(doc["components"]["schemas"]) | {m.__name__ for m in EVENT_MODELS.values()}
    models = ROOT / "generated" / "incident_webhooks" / "models"
    classes = [
        n.name
        for module in sorted(models.glob("*.py"))
        for n in ast.parse(module.read_text()).body
        if isinstance(n, ast.ClassDef)
    ]
    assert "IncidentV2Mode" in classes and "ActionV1Status" in classes
    for name in classes:
        prefix = max((k for k in known if name.startswith(k)), key=len, default="")
        assert prefix, f"{name} is not named after a spec schema"
        rest = name[len(prefix) :]
        assert not re.search(r"\d$", rest), f"{name} looks numbered"
