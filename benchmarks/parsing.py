"""Steady parse against orjson, pydantic's floor and incident.io's SDK."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.common import LARGE, ROUNDS, SDK_MODELS, SMALL, example, load, tier
from benchmarks.timing import against, paired, summary


def any_floor(event_type: str) -> Callable[[bytes], object]:
    """pydantic's floor for one event, as the issue that set the parse targets defined it:
    the same envelope and payload models with every field typed ``Any`` (same aliases, same
    required fields, unknown properties kept), validated from JSON by the compiled validator
    with no Python in between."""
    from incident_webhooks import EVENT_MODELS
    from pydantic import ConfigDict, Field, create_model

    model = EVENT_MODELS[event_type]
    payload = model.model_fields["payload"]
    inner = payload.annotation
    assert isinstance(inner, type)
    fields: dict[str, Any] = {
        name: (Any, Field(... if f.is_required() else None, alias=f.alias))
        for name, f in inner.model_fields.items()  # type: ignore[attr-defined]
    }
    config = ConfigDict(extra="allow")
    inner_any = create_model(f"{inner.__name__}Any", __config__=config, **fields)
    envelope = create_model("EnvelopeAny", __config__=config, event_type=(Any, ...),
                            payload=(inner_any, Field(alias=payload.alias)))  # fmt: skip
    return envelope.__pydantic_validator__.validate_json


def bench_parsing() -> dict[str, Any]:
    from incident_webhooks import parse_event

    results: dict[str, Any] = {}
    for label, event_type in (("small", SMALL), ("large", LARGE)):
        body = example(event_type)
        sdk_model = load(SDK_MODELS[event_type])
        floor = any_floor(event_type)
        # name -> (tier of parse_event to measure it in, or 0 for none, the call)
        candidates: dict[str, tuple[int, Callable[[], object]]] = {
            "parse_event": (2, lambda body=body: parse_event(body)),
            "parse_event, first tier": (1, lambda body=body: parse_event(body)),
            "pydantic floor": (0, lambda body=body, floor=floor: floor(body)),
            "orjson.loads": (0, lambda body=body: orjson.loads(body)),
            "json.loads": (0, lambda body=body: json.loads(body)),
            "sdk.from_dict": (0, lambda body=body, m=sdk_model: m.from_dict(json.loads(body))),
        }
        rounds: dict[str, list[float]] = {name: [] for name in candidates}
        ratios: dict[str, list[float]] = {name: [] for name in candidates}
        for _ in range(ROUNDS):
            for name, (number, func) in candidates.items():
                if number:
                    tier(number)
                seconds, ratio = against(func, candidates["orjson.loads"][1])
                rounds[name].append(seconds)
                ratios[name].append(ratio)
        results[label] = {
            "event_type": event_type,
            "bytes": len(body),
            "events_per_second": {k: summary([1 / s for s in v]) for k, v in rounds.items()},
            "ratio_vs_orjson": {k: summary(v) for k, v in ratios.items()},
            "sdk_over_ours": paired(ratios["sdk.from_dict"], ratios["parse_event"]),
            "first_tier_over_union": paired(ratios["parse_event, first tier"], ratios["parse_event"]),
            "ours_over_floor": paired(ratios["parse_event"], ratios["pydantic floor"]),
            "seconds_per_call": {k: summary(v) for k, v in rounds.items()},
        }
    tier(2)  # the receive-path benchmarks below measure the steady state
    return results
