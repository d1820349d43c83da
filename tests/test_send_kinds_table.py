"""The table of send kinds (gateway/routes/send_kinds.py) against what follows from it: the routes
and the Python client's send methods, which are written by hand (the client does not import the
server) and must keep step with it."""

import inspect
import re
from pathlib import Path
from typing import Any

from gateway.app import ROUTES
from gateway.routes.send_kinds import SEND_KINDS
from wa_gateway_client import Client
from wa_gateway_client.calls import Operation

# The other sending routes: not kinds of the table.
OTHER_SENDS = {"/message/batch", "/message/route", "/message/{id}/edit"}


def client_operations() -> dict[str, tuple[str, Operation[Any, Any]]]:
    """The client's POST /message/... methods by path: (method name, operation)."""
    found = {}
    for name, value in inspect.getmembers(Client):
        if isinstance(value, Operation) and value.method == "POST" and value.template.startswith("/message/"):
            found[value.template] = (name, value)
    return found


def test_the_client_has_one_send_method_per_kind_and_no_other() -> None:
    sends = {path: op for path, op in client_operations().items() if path not in OTHER_SENDS}
    assert sorted(sends) == sorted(f"/message/{kind.name}" for kind in SEND_KINDS)
    for kind in SEND_KINDS:
        name, _ = sends[f"/message/{kind.name}"]
        assert name == f"send_{kind.name}"


def test_each_send_method_takes_the_fields_of_its_kind() -> None:
    operations = client_operations()
    for kind in SEND_KINDS:
        model = kind.on_instance()
        _, operation = operations[f"/message/{kind.name}"]
        parameters = dict(operation.signature.parameters)
        assert parameters.pop("idempotency_key").kind is inspect.Parameter.KEYWORD_ONLY
        assert all(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters.values()), kind.name
        assert set(parameters) == set(model.model_fields), kind.name
        required = {name for name, p in parameters.items() if p.default is inspect.Parameter.empty}
        assert required == {name for name, field in model.model_fields.items() if field.is_required()}, kind.name
        # Required fields go by position, the others by keyword, as in every method of the client.
        for name, p in parameters.items():
            by_position = p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
            assert by_position == (name in required), (kind.name, name)


def test_every_kind_has_its_route_from_the_table() -> None:
    routes = {route.path: route for route in ROUTES if route.method == "POST"}
    for kind in SEND_KINDS:
        route = routes[f"/message/{kind.name}"]
        assert route.body is kind.on_instance()
        assert route.summary == kind.summary
        assert route.checks_key
        assert route.handler.__name__ == f"send_{kind.name}"
    table = {f"/message/{kind.name}" for kind in SEND_KINDS}
    untabled = {p for p in routes if re.fullmatch(r"/message/\w+", p)} - table - OTHER_SENDS
    assert not untabled


def test_only_the_table_routes_leave_the_key_check_to_the_accept_step() -> None:
    """A route that leaves the key check to its accept step must take it there (accept_sends);
    the table's routes do, and no route written by hand may ask for it."""
    deferring = {(route.method, route.path) for route in ROUTES if route.checks_key}
    assert deferring == {("POST", f"/message/{kind.name}") for kind in SEND_KINDS}


def test_messages_are_accepted_through_accept_sends_only() -> None:
    """Only gateway/routes/accepting.py accepts messages or takes the key check the middleware left."""
    gateway = Path(__file__).parent.parent / "gateway"
    callers = {
        str(path.relative_to(gateway))
        for path in gateway.rglob("*.py")
        if "lanes.accept(" in path.read_text() or "request.pop(KEY_CHECK" in path.read_text()
    }
    assert callers == {"routes/accepting.py", "middleware.py"}  # the middleware's own fallback check
