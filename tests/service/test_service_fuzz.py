"""Property-based fuzzing of every operation in /openapi.json: no 5xx, ever.

Bounded (``MAX_EXAMPLES`` per operation and mode, no shrinking) so it fits the fast suite.
Each generated case is sent with a valid token (to reach the handlers) and without one.
Besides random ids, the cases also target a real dataset and job of the tenant, so
handlers run past their 404s.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from tests.service.conftest import TINY, open_api  # noqa: E402

FAST_EXAMPLES, SLOW_EXAMPLES = 4, 60  # per operation and generation mode


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory, small_csv):
    client, api = open_api(tmp_path_factory.mktemp("fuzz"), workers=0, max_upload_mb=0.25)
    ds = api.upload(small_csv).json()["id"]
    job = api.submit(ds, TINY).json()["id"]  # stays queued: no workers
    try:
        yield api, {"dataset_id": ds, "job_id": job}
    finally:
        client.__exit__(None, None, None)


def test_no_server_errors(fuzz_target):
    _fuzz(*fuzz_target, max_examples=FAST_EXAMPLES, min_calls=60)


@pytest.mark.slow
def test_no_server_errors_thorough(fuzz_target):
    _fuzz(*fuzz_target, max_examples=SLOW_EXAMPLES, min_calls=600)


def _fuzz(api, real_ids: dict[str, str], *, max_examples: int, min_calls: int) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        op = result.ok()
        params = {k: v for k, v in real_ids.items() if "{" + k + "}" in op.path}
        strategies = [op.as_strategy(GenerationMode.POSITIVE),
                      op.as_strategy(GenerationMode.NEGATIVE)]
        if params:
            strategies.append(op.as_strategy(GenerationMode.POSITIVE, path_parameters=params))
        for strategy in strategies:
            @given(case=strategy)
            @settings(max_examples=max_examples, deadline=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], database=None,
                      suppress_health_check=list(HealthCheck))
            def check(case):
                nonlocal calls
                for auth in (api.a, {}):
                    calls += 1
                    response = case.call(headers={**(case.headers or {}), **auth})
                    if response.status_code >= 500:
                        failures.append(f"{case.method} {case.formatted_path} -> "
                                        f"{response.status_code}: {response.text[:200]}")

            try:
                check()
            except Unsatisfiable:  # nothing to make invalid (e.g. no parameters at all)
                continue
    assert calls >= min_calls, calls
    assert not failures, "\n".join(failures[:20])
