"""schemathesis, every check, against the app in process: each response is documented, valid data is
accepted, invalid data refused with a 4xx in FastAPI's format, never a 5xx. Bounded (30 examples
per operation and phase, about 45 s on 2 cores) to keep `make test` fast; `st run --checks all`
against a live server is the long form. Run apart from the main session (`make test` runs it
after pytest): hypothesis, imported in the same session, leaves the loaded model unfrozen for
tests/app/test_app.py."""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.api.schemas import ConstraintsBody
from app.main import create_app
from app.serving.service import Service
from app.settings import Settings
from model.engine.params import ParameterError, SamplingParams
from model.vocab import SPACES

# The app with its models loaded at import, as schemathesis reads the schema then (the document
# names the loaded models and their alphabet), once for the whole run.
SETTINGS = Settings(default_model="names-mlp", device="cpu", workers=2)
APP = create_app(SETTINGS)
APP.state.service = Service.start(SETTINGS)


async def without_lifespan(scope: dict, receive: Callable, send: Callable) -> None:
    """APP for every scope but "lifespan", which it refuses as an app without one does: schemathesis
    (4.x) runs an app's lifespan around each test item, and ours would load every model again (about
    6 s an operation) to replace the service loaded above."""
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan: the service is started at import")
    await APP(scope, receive, send)


schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan)


def _refused_though_schema_valid(body: object) -> bool:
    """What JSON Schema cannot state: a prefix (stripped) must fit max_length ("more than
    max_length"), and constraints must admit a name (the default model's automaton decides: a
    regex over other characters, or constraints that exclude each other). Such bodies get
    documented 422s; a fuzzer reading the schema alone takes them for valid data."""
    if not isinstance(body, dict):
        return False
    prefix, max_length = body.get("prefix", ""), body.get("max_length", 32)
    if (
        isinstance(prefix, str)
        and isinstance(max_length, int | float)
        and len(prefix.strip(SPACES)) > max_length
    ):
        return True
    if not isinstance(body.get("constraints"), dict):
        return False
    try:
        constraints = ConstraintsBody.model_validate(body["constraints"]).engine()
        params = SamplingParams(prefix=str(prefix), max_length=int(max_length))
        APP.state.service.default.language(params, constraints)
    except (ParameterError, ValueError, TypeError):
        return True
    return False


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_agrees_with_its_openapi_document(case):
    """Every check; for a body refused for a reason the schema cannot state, every check but
    "valid data is accepted" (its 422 must still be documented, in format, and no 5xx)."""
    if _refused_though_schema_valid(case.body):
        case.call_and_validate(excluded_checks=[positive_data_acceptance])
    else:
        case.call_and_validate()
