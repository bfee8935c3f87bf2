"""Every number in every admin contract is bounded, and NaN/Infinity are refused, naming the field (issue 6 #4)."""
from __future__ import annotations

import importlib
import math
import pkgutil
from typing import Any

import pytest
from pydantic import ValidationError

import shared.domain
import shared.pillars.tools.domain  # noqa: F401  (tools registry contracts are checked too)
import shared.pillars
from shared.domain.base import Contract
from shared.domain.keys import KeyRotate
from shared.pillars.models.domain import ModelSpec
from shared.domain.quotas import QuotaLimits

for _mod in pkgutil.iter_modules(shared.domain.__path__):  # every contract, including ones added later
    importlib.import_module(f"shared.domain.{_mod.name}")
importlib.import_module("shared.guardrails.policy")  # guardrail policies are admin contracts too
for _name in ("domain", "feedback"):  # A/B experiments and the feedback contract
    importlib.import_module(f"shared.experiments.{_name}")
for _mod in pkgutil.walk_packages(shared.pillars.__path__, "shared.pillars."):  # each pillar's contracts too
    importlib.import_module(_mod.name)


def contracts() -> list[type[Contract]]:
    seen, todo = [], list(Contract.__subclasses__())
    while todo:
        c = todo.pop()
        if c not in seen:
            seen.append(c)
            todo.extend(c.__subclasses__())
    return sorted(seen, key=lambda c: c.__name__)


def unbounded(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        out = []
        if node.get("type") in ("integer", "number") and "maximum" not in node and "exclusiveMaximum" not in node:
            out.append(path or "<root>")
        for k, v in node.items():
            out += unbounded(v, f"{path}.{k}" if path else k)
        return out
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in unbounded(v, f"{path}[{i}]")]
    return []


def test_there_are_contracts_to_check():
    names = {c.__name__ for c in contracts()}
    assert {"ModelSpec", "Backend", "RetryPolicy", "BreakerPolicy", "QuotaLimits", "KeyRotate"} <= names


@pytest.mark.parametrize("contract", contracts(), ids=lambda c: c.__name__)
def test_every_number_has_a_maximum(contract: type[Contract]):
    assert unbounded(contract.model_json_schema()) == []


BACKEND = {"id": "a", "kind": "openai", "endpoint": "https://api.openai.com/v1", "deployment": "gpt-4o"}


def spec(**extra: Any) -> dict[str, Any]:
    return {"name": "m", "backends": [BACKEND], **extra}


CASES = [
    (ModelSpec, spec(context_window=10**22), "context_window"),
    (ModelSpec, spec(context_window=1e22), "context_window"),
    (ModelSpec, spec(input_price_per_1k=math.inf), "input_price_per_1k"),
    (ModelSpec, spec(output_price_per_1k=math.nan), "output_price_per_1k"),
    (ModelSpec, spec(output_price_per_1k=1e22), "output_price_per_1k"),
    (ModelSpec, spec(backends=[{**BACKEND, "priority": 10**22}]), "backends.0.priority"),
    (ModelSpec, spec(backends=[{**BACKEND, "tpm_capacity": 10**22}]), "backends.0.tpm_capacity"),
    (ModelSpec, spec(backends=[{**BACKEND, "timeout_seconds": math.nan}]), "backends.0.timeout_seconds"),
    (ModelSpec, spec(routing={"breaker": {"failure_count": 10**22}}), "routing.breaker.failure_count"),
    (ModelSpec, spec(routing={"breaker": {"min_calls": 10**9}}), "routing.breaker.min_calls"),
    (ModelSpec, spec(routing={"breaker": {"trip_seconds": math.inf}}), "routing.breaker.trip_seconds"),
    (ModelSpec, spec(routing={"breaker": {"failure_ratio": math.nan}}), "routing.breaker.failure_ratio"),
    (ModelSpec, spec(routing={"retry": {"total_timeout_seconds": math.inf}}), "routing.retry.total_timeout_seconds"),
    (ModelSpec, spec(routing={"retry": {"retry_on_status": [10**22]}}), "routing.retry.retry_on_status.0"),
    (QuotaLimits, {"tokens_per_day": 10**22}, "tokens_per_day"),
    (QuotaLimits, {"cost_per_month_usd": math.inf}, "cost_per_month_usd"),
    (QuotaLimits, {"cost_per_month_usd": math.nan}, "cost_per_month_usd"),
    (KeyRotate, {"overlap_seconds": 10**22}, "overlap_seconds"),
]


@pytest.mark.parametrize("contract,body,field", CASES, ids=[c[2] + ":" + repr(c[1]) [-30:] for c in CASES])
def test_out_of_range_numbers_are_refused_naming_the_field(contract, body, field):
    with pytest.raises(ValidationError) as err:
        contract.model_validate(body)
    assert field in {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}


def test_documented_maxima_are_accepted():
    m = ModelSpec.model_validate(spec(context_window=100_000_000, input_price_per_1k=10_000,
                                      backends=[{**BACKEND, "priority": 1000, "tpm_capacity": 10**10}],
                                      routing={"breaker": {"failure_count": 10_000, "min_calls": 10_000}}))
    assert m.context_window == 100_000_000
    assert QuotaLimits(tokens_per_month=10**12, cost_per_month_usd=10**9).tokens_per_month == 10**12
