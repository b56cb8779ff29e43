"""The package loads what is used, when it is used: importing it builds no model, an event
model brings only the models it reaches, and parsing validates with the body's own model."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import incident_webhooks
import pytest
from conftest import spec_examples

GRANTED = "private_incident.membership_granted_v1"


def fresh(code: str) -> Any:
    """Run ``code`` in a new interpreter and return what it prints, as JSON."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


LOADED = (
    "import json, sys\n"
    "def loaded():\n"
    "    return sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('incident_webhooks.models.'))\n"
)


def test_importing_the_package_builds_no_model() -> None:
    state = fresh(LOADED + "import incident_webhooks\nprint(json.dumps([loaded(), 'pydantic.main' in sys.modules]))")
    assert state == [[], False]


def test_one_event_model_loads_only_the_models_it_reaches() -> None:
    state = fresh(
        LOADED
        + "from incident_webhooks import PrivateIncidentMembershipGrantedV1\n"
        + "print(json.dumps(loaded()))"
    )
    assert state == ["private_incident_membership_granted_v1", "webhook_incident_user_v2"]


def test_parsing_one_event_builds_its_model_and_not_the_union() -> None:
    body = json.dumps(spec_examples()[GRANTED])
    state = fresh(
        LOADED
        + "import incident_webhooks as w\n"
        + f"event = w.parse_event({body!r}.encode())\n"
        + "from incident_webhooks import events\n"
        + "print(json.dumps([type(event).__name__, loaded(), events._adapter.cache_info().currsize]))"
    )
    assert state == [
        "PrivateIncidentMembershipGrantedV1",
        ["private_incident_membership_granted_v1", "webhook_incident_user_v2"],
        0,
    ]


def test_every_public_name_imports_in_a_fresh_process_as_what_it_is() -> None:
    kinds = fresh(
        "import json, inspect, collections.abc, typing\n"
        "import incident_webhooks as w\n"
        "out = {}\n"
        "for name in w.__all__:\n"
        "    value = getattr(w, name)\n"
        "    if inspect.isclass(value): out[name] = 'class'\n"
        "    elif inspect.isfunction(value): out[name] = 'function'\n"
        "    elif isinstance(value, collections.abc.Mapping): out[name] = 'mapping'\n"
        "    elif typing.get_origin(value) is typing.Annotated: out[name] = 'union'\n"
        "    else: out[name] = repr(type(value))\n"
        "print(json.dumps(out))"
    )
    assert set(kinds) == set(incident_webhooks.__all__)
    assert kinds["parse_event"] == kinds["verify"] == "function"
    assert kinds["EVENT_MODELS"] == "mapping"
    assert kinds["WebhookEvent"] == "union"
    classes = {n for n in incident_webhooks.__all__ if n[0].isupper() and n not in ("EVENT_MODELS", "WebhookEvent")}
    assert {kinds[n] for n in classes} == {"class"}
    assert set(dir(incident_webhooks)) >= set(incident_webhooks.__all__)


def test_a_body_that_does_not_start_with_its_event_type_still_parses() -> None:
    example = spec_examples()[GRANTED]
    reordered = {GRANTED: example[GRANTED], "event_type": GRANTED}
    event = incident_webhooks.parse_event(json.dumps(reordered).encode())
    assert type(event) is incident_webhooks.PrivateIncidentMembershipGrantedV1


def test_a_duplicate_event_type_key_gets_the_unions_answer_not_the_first_keys() -> None:
    # JSON parsers keep the last of two equal keys; a sniff of the first must not win.
    payload = json.dumps(spec_examples()[GRANTED][GRANTED])
    body = f'{{"event_type": "{GRANTED}", "{GRANTED}": {payload}, "event_type": "never.heard_of_v1"}}'
    with pytest.raises(incident_webhooks.UnknownEventType):
        incident_webhooks.parse_event(body.encode())


@pytest.mark.parametrize("as_text", [False, True])
def test_the_fast_path_and_the_union_give_the_same_event(as_text: bool) -> None:
    from incident_webhooks import events

    for event_type, example in spec_examples().items():
        body = json.dumps(example)
        fast = incident_webhooks.parse_event(body if as_text else body.encode())
        slow = events._parse_with_union(body)
        assert fast == slow and type(fast) is type(slow), event_type
