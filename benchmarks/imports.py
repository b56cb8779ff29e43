"""Import time and package size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import LARGE, PACKAGE, ROUNDS, SDK_MODELS, example
from benchmarks.timing import TIMED_IMPORT, fresh_python, paired, summary


def bench_import() -> dict[str, Any]:
    sdk_module, sdk_name = SDK_MODELS[LARGE].split(":")
    body = example(LARGE).decode()
    statements = {
        "pydantic": "import pydantic",
        # pydantic with its validation machinery loaded, as any model definition loads it
        "pydantic_ready": "from pydantic import BaseModel\nclass M(BaseModel): a: int",
        "incident_webhooks": "import incident_webhooks",
        "sdk_one_model": f"from {sdk_module} import {sdk_name}",
        "ours_first_event": f"import incident_webhooks; incident_webhooks.parse_event({body!r})",
        "sdk_first_event": f"import json; from {sdk_module} import {sdk_name} as M; M.from_dict(json.loads({body!r}))",
    }
    rounds: dict[str, list[float]] = {name: [] for name in statements}
    added: list[float] = []
    for _ in range(ROUNDS):
        for name, stmt in statements.items():
            rounds[name].append(fresh_python(TIMED_IMPORT.format(stmt=stmt)))
        added.append(fresh_python("import pydantic\n" + TIMED_IMPORT.format(stmt="import incident_webhooks")))
    return {
        "seconds": {k: summary(v) for k, v in rounds.items()},
        "added_over_pydantic_seconds": summary(added),
        "added_over_pydantic_ready_seconds": summary(
            [a - b for a, b in zip(rounds["incident_webhooks"], rounds["pydantic_ready"], strict=True)]
        ),
        "sdk_over_ours": paired(rounds["sdk_one_model"], rounds["incident_webhooks"]),
        "sdk_over_ours_first_event": paired(rounds["sdk_first_event"], rounds["ours_first_event"]),
    }


def bench_size(package: Path = PACKAGE) -> dict[str, Any]:
    files = sorted(p for p in package.rglob("*.py"))
    return {
        "files": len(files),
        "lines": sum(len(p.read_text().splitlines()) for p in files),
        "bytes": sum(p.stat().st_size for p in files),
        "model_modules": len(list((package / "models").glob("*.py"))) - 1,
    }
