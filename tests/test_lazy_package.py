"""The package loads what is used, when it is used: importing it builds no model, an event
model brings only the models it reaches, and parsing validates with the body's own model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
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
        + "print(json.dumps([type(event).__name__, loaded(), events._PARSER.unions_built]))"
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
        slow = events._PARSER.parse_with_union(body)
        assert fast == slow and type(fast) is type(slow), event_type


def test_compact_and_spaced_bodies_take_their_models_validator_without_the_union() -> None:
    # Compact as a sender writes it, and spaced as json.dumps writes it: both start with the
    # event type, so neither needs the union, in any order of first sightings.
    examples = spec_examples()
    bodies = []
    for event_type in sorted(examples)[:6]:
        bodies.append(json.dumps(examples[event_type], separators=(",", ":")))
        bodies.append(json.dumps(examples[event_type]))
    state = fresh(
        LOADED
        + "import incident_webhooks as w\nfrom incident_webhooks import events\n"
        + f"bodies = {bodies!r}\n"
        + "types = [type(w.parse_event(b.encode())).__name__ for b in bodies * 3]\n"
        + "print(json.dumps([types, events._PARSER.unions_built, events._PARSER.union is None]))"
    )
    expected = [incident_webhooks.EVENT_MODELS[t].__name__ for t in sorted(examples)[:6] for _ in (1, 2)]
    assert state == [expected * 3, 0, True]


def test_parse_event_moves_to_the_union_after_promote_after_events() -> None:
    body = json.dumps(spec_examples()[GRANTED])
    state = fresh(
        "import json, incident_webhooks as w\nfrom incident_webhooks import events\n"
        + "events.PROMOTE_AFTER = 5\n"
        + "seen = []\n"
        + "for _ in range(7):\n"
        + f"    event = w.parse_event({body!r}.encode())\n"
        + "    seen.append([type(event).__name__, events._PARSER.union is not None])\n"
        + "print(json.dumps([seen, events._PARSER.unions_built]))"
    )
    name = "PrivateIncidentMembershipGrantedV1"
    # The fifth event is still parsed by its own model and then builds the union.
    assert state == [[[name, False]] * 4 + [[name, True]] * 3, 1]


def test_a_body_only_the_union_can_answer_builds_it_and_it_then_serves_every_body() -> None:
    body = json.dumps(spec_examples()[GRANTED])
    state = fresh(
        "import json, incident_webhooks as w\nfrom incident_webhooks import events\n"
        + f"w.parse_event({body!r}.encode())\n"
        + "before = events._PARSER.union is None\n"
        + "try:\n    w.parse_event(b'{\"event_type\": \"never.heard_of_v1\"}')\n"
        + "except w.UnknownEventType:\n    pass\n"
        + "used = []\n"
        + "real = events._PARSER.union.validate_json\n"
        + "events._PARSER.union = type('Spy', (), {'validate_json': lambda self, b: used.append(b) or real(b)})()\n"
        + f"event = w.parse_event({body!r}.encode())\n"
        + "print(json.dumps([before, len(used), type(event).__name__, events._PARSER.unions_built]))"
    )
    assert state == [True, 1, "PrivateIncidentMembershipGrantedV1", 1]


def test_preload_builds_every_model_and_the_union_at_once() -> None:
    state = fresh(
        LOADED
        + "import incident_webhooks as w\nfrom incident_webhooks import events\n"
        + "w.preload(); w.preload()\n"
        + "print(json.dumps([len(loaded()), events._PARSER.union is not None, events._PARSER.unions_built]))"
    )
    modules = len(list((Path(incident_webhooks.__file__).parent / "models").glob("*.py"))) - 1
    assert state[1:] == [True, 1]
    # Every event model and what it reaches; a model no webhook reaches stays unloaded.
    assert len(incident_webhooks.EVENT_MODELS) < state[0] <= modules


def test_threads_crossing_the_threshold_together_build_the_union_once() -> None:
    examples = spec_examples()
    bodies = [json.dumps(examples[t]) for t in sorted(examples)]
    state = fresh(
        "import json, threading, incident_webhooks as w\nfrom incident_webhooks import events\n"
        + "events.PROMOTE_AFTER = 200\n"
        + f"bodies = [b.encode() for b in {bodies!r}]\n"
        + "wrong = []\n"
        + "start = threading.Barrier(8)\n"
        + "def work(k):\n"
        + "    start.wait()\n"
        + "    for i in range(150):\n"
        + "        b = bodies[(i + k) % len(bodies)]\n"
        + "        if w.parse_event(b).event_type != json.loads(b)['event_type']: wrong.append(b)\n"
        + "threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]\n"
        + "[t.start() for t in threads]; [t.join() for t in threads]\n"
        + "print(json.dumps([len(wrong), events._PARSER.union is not None, events._PARSER.unions_built]))"
    )
    assert state == [0, True, 1]


def test_a_model_that_an_event_reaches_also_works_on_its_own() -> None:
    # Models are compiled on first use (deferred): one used directly, before or after an
    # event that reaches it, validates, dumps and describes itself.
    granted = spec_examples()[GRANTED]
    state = fresh(
        "import json\n"
        + "from incident_webhooks.models import WebhookIncidentUserV2\n"
        + f"user = WebhookIncidentUserV2.model_validate({granted[GRANTED]!r})\n"
        + "import incident_webhooks as w\n"
        + f"event = w.parse_event({json.dumps(granted)!r})\n"
        + "again = WebhookIncidentUserV2.model_validate_json(event.payload.model_dump_json())\n"
        + "schema = w.PrivateIncidentMembershipGrantedV1.model_json_schema()\n"
        + "print(json.dumps([user == event.payload == again, sorted(schema['properties'])]))"
    )
    assert state == [True, ["event_type", GRANTED]]
