"""HTTP side of the fake external system: routing, fault application and the stdlib server."""

import re
import socketserver
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from external_system.contacts import ContactBook, SeedContacts, SeededContacts
from external_system.faults import Decision, Endpoint, Fault
from external_system.models import (
    ACKS_ROUTE,
    CONTACTS_ROUTE,
    CREDENTIALS_ROUTE,
    HEALTH_ROUTE,
    RECORDS_ROUTE,
    AckRequest,
    AcksQuery,
    AddRecordsRequest,
    ClientHealth,
    CredentialFaultsRequest,
    CredentialsRequest,
    ErrorBody,
    FaultConfig,
    Health,
    NewCredentialRequest,
    RateQuery,
    RecordsQuery,
    ResetDone,
    SeedClientRequest,
)
from external_system.state import NotFoundError, RecordFilter, State, TooManyRecordsError

MAX_BODY_BYTES = 5 * 1024 * 1024
# The same words for a missing, malformed, unknown or retired token: the caller learns nothing.
UNAUTHORIZED = "missing or invalid credentials"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    body: bytes
    # The only header any route reads; kept out of repr so a logged request shows no token.
    authorization: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Reply:
    status: int
    body: BaseModel
    headers: Mapping[str, str] = field(default_factory=dict)


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})

    def reply(self) -> Reply:
        return Reply(self.status, ErrorBody(error=str(self)), self.headers)


type Handler = Callable[[Request, Mapping[str, str]], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    # External routes (all /v1/clients/{client_id}/...) are counted in /_admin/stats and need
    # that client's credentials once it has any.
    stat: str | None = None


def _validation_message(exc: ValidationError, *, echo_input: bool = False) -> str:
    return "; ".join(_error_message(error, echo_input) for error in exc.errors(include_url=False))


def _error_message(error: ErrorDetails, echo_input: bool) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "body"
    # Only a single string is echoed (a query value as sent): a body may carry a token, and a
    # missing field's input is the whole request.
    refused = error.get("input")
    if echo_input and isinstance(refused, str):
        return f"{where}: {error['msg']} (got {refused!r})"
    return f"{where}: {error['msg']}"


def _parse_body[ModelT: BaseModel](model: type[ModelT], body: bytes) -> ModelT:
    try:
        return model.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise HttpError(400, _validation_message(exc)) from exc


def _parse_query[ModelT: BaseModel](model: type[ModelT], query: Mapping[str, str]) -> ModelT:
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        # A query holds no secrets, and the refused value is what a caller needs to see.
        raise HttpError(400, _validation_message(exc, echo_input=True)) from exc


def _record_filter(query: RecordsQuery) -> RecordFilter:
    return RecordFilter(
        completed_after=query.completed_after,
        year=query.year,
        pending_only=query.script == "GET_COMPLETED_PENDING",
        completed_from=query.completed_from,
        completed_to=query.completed_to,
    )


class Api:
    """Maps requests to state changes; admin routes are never subject to faults."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._contact_book = ContactBook()
        client, record = r"(?P<client_id>[^/]+)", r"(?P<record_id>[^/]+)"
        table: list[tuple[str, str, Handler, str | None]] = [
            ("GET", "/health", self._health, None),
            ("POST", "/_admin/reset", self._reset, None),
            ("POST", "/_admin/clients", self._seed, None),
            ("POST", f"/_admin/clients/{client}/records", self._add_records, None),
            ("POST", f"/_admin/clients/{client}/records/{record}/bump", self._bump, None),
            ("GET", "/_admin/faults", self._get_faults, None),
            ("PUT", "/_admin/faults", self._put_faults, None),
            ("GET", "/_admin/acks", self._ack_report, None),
            ("GET", "/_admin/stats", self._stats, None),
            ("GET", "/_admin/rate", self._rate, None),
            ("GET", f"/_admin/clients/{client}/credentials", self._get_credentials, None),
            ("PUT", f"/_admin/clients/{client}/credentials", self._put_credentials, None),
            ("DELETE", f"/_admin/clients/{client}/credentials", self._delete_credentials, None),
            ("PUT", f"/_admin/clients/{client}/credential-faults", self._credential_faults, None),
            ("GET", f"/v1/clients/{client}/records", self._records, RECORDS_ROUTE),
            ("POST", f"/v1/clients/{client}/acks", self._acks, ACKS_ROUTE),
            ("GET", f"/v1/clients/{client}/contacts", self._contacts, CONTACTS_ROUTE),
            ("GET", f"/v1/clients/{client}/health", self._client_health, HEALTH_ROUTE),
            ("POST", f"/v1/clients/{client}/credentials", self._register, CREDENTIALS_ROUTE),
            ("POST", f"/_admin/clients/{client}/contacts", self._seed_contacts, None),
            ("POST", f"/_admin/clients/{client}/contacts/{record}/touch", self._touch, None),
            ("POST", f"/_admin/clients/{client}/contacts/{record}/resend", self._resend, None),
        ]
        self._routes = [Route(m, re.compile(p), h, s) for m, p, h, s in table]

    def handle(self, request: Request) -> Reply:
        if request.path.startswith("/v1/"):
            # Every external call counts for the rate, even one that is refused or unrouted.
            self._state.record_arrival()
        try:
            route, params = self._match(request)
        except HttpError as exc:
            return exc.reply()
        try:
            if route.stat is not None:
                self._authenticate(request, params["client_id"])
            reply = route.handler(request, params)
        except HttpError as exc:
            reply = exc.reply()
        except NotFoundError as exc:
            reply = HttpError(404, str(exc)).reply()
        except Exception as exc:
            # A bug here must still answer: a dropped connection would look like a network fault.
            traceback.print_exc()
            reply = HttpError(500, f"internal error: {type(exc).__name__}: {exc}").reply()
        if route.stat is not None:
            self._state.count_request(route.stat, reply.status)
        return reply

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self._routes:
            found = route.pattern.fullmatch(request.path)
            if found is None:
                continue
            if route.method == request.method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            methods = ", ".join(sorted(allowed))
            raise HttpError(
                405,
                f"method {request.method} not allowed on {request.path} (allowed: {methods})",
                {"Allow": methods},
            )
        raise HttpError(404, f"no route {request.method} {request.path}")

    # --- external API -------------------------------------------------------------------------

    def _authenticate(self, request: Request, client_id: str) -> None:
        # Before any validation or fault, so a refused caller learns nothing else about the client.
        if not self._state.keyring.admits(client_id, request.authorization):
            raise HttpError(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})

    def _check_known(self, client_id: str) -> None:
        """A client exists if it has records or contacts; either feed alone is a real client."""
        try:
            self._state.check_client(client_id)
        except NotFoundError:
            try:
                self._contact_book.check(client_id)
            except NotFoundError:
                raise NotFoundError(f"unknown client {client_id}") from None

    def _records(self, request: Request, params: Mapping[str, str]) -> Reply:
        query = _parse_query(RecordsQuery, request.query)
        client_id = params["client_id"]
        # Bad input is answered before any fault, so a fault never hides a caller's mistake.
        self._state.check_client(client_id, query.group)

        def serve_page() -> Reply:
            page = self._state.page(
                client_id, query.group, query.cursor, query.limit, _record_filter(query)
            )
            return Reply(200, page)

        return self._external(client_id, Endpoint.RECORDS, serve_page)

    def _acks(self, request: Request, params: Mapping[str, str]) -> Reply:
        body = _parse_body(AckRequest, request.body)
        client_id = params["client_id"]
        self._state.check_client(client_id)
        acks = [(ack.record_id, ack.version) for ack in body.acks]
        return self._external(
            client_id, Endpoint.ACKS, lambda: Reply(200, self._state.ack(client_id, acks))
        )

    def _contacts(self, request: Request, params: Mapping[str, str]) -> Reply:
        client_id = params["client_id"]
        try:
            cursor = int(request.query.get("cursor") or 0)
            limit = int(request.query.get("limit") or 50)
        except ValueError as exc:
            raise HttpError(400, "cursor, limit: must be integers") from exc
        if not 1 <= limit <= 500:
            raise HttpError(400, "limit: must be between 1 and 500")
        self._contact_book.check(client_id)
        return self._external(
            client_id,
            Endpoint.RECORDS,
            lambda: Reply(200, self._contact_book.page(client_id, cursor, limit)),
        )

    def _client_health(self, request: Request, params: Mapping[str, str]) -> Reply:
        client_id = params["client_id"]
        self._check_known(client_id)
        return self._external(
            client_id, Endpoint.HEALTH, lambda: Reply(200, ClientHealth(client_id=client_id))
        )

    def _register(self, request: Request, params: Mapping[str, str]) -> Reply:
        # Never faulted by /_admin/faults: a failed rotation is what credential faults simulate.
        body = _parse_body(NewCredentialRequest, request.body)
        client_id = params["client_id"]
        self._check_known(client_id)
        added, credentials = self._state.keyring.register(client_id, body.token)
        return Reply(201 if added else 200, credentials)

    def _seed_contacts(self, request: Request, params: Mapping[str, str]) -> Reply:
        body = _parse_body(SeedContacts, request.body)
        client_id = params["client_id"]
        self._contact_book.seed(client_id, body.count)
        if body.credential is not None:
            self._state.keyring.replace(client_id, [body.credential])
        # Not the request echoed: it may carry a token.
        return Reply(201, SeededContacts(count=body.count))

    def _touch(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(
            200, self._contact_book.touch(params["client_id"], params["record_id"], change=True)
        )

    def _resend(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(
            200, self._contact_book.touch(params["client_id"], params["record_id"], change=False)
        )

    def _external(self, client_id: str, endpoint: Endpoint, apply: Callable[[], Reply]) -> Reply:
        decision = self._state.decide_fault(client_id, endpoint)
        if decision.latency_seconds > 0:
            time.sleep(decision.latency_seconds)
        if decision.fault is None:
            return apply()
        return _injected(decision)

    # --- admin API ----------------------------------------------------------------------------

    def _health(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(200, Health())

    def _reset(self, request: Request, params: Mapping[str, str]) -> Reply:
        self._state.reset()
        self._contact_book.reset()
        return Reply(200, ResetDone())

    def _seed(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(201, self._state.seed(_parse_body(SeedClientRequest, request.body)))

    def _add_records(self, request: Request, params: Mapping[str, str]) -> Reply:
        body = _parse_body(AddRecordsRequest, request.body)
        try:
            return Reply(200, self._state.add_records(params["client_id"], body))
        except TooManyRecordsError as exc:
            # Valid on its own, refused for what the client already holds.
            raise HttpError(409, str(exc)) from exc

    def _bump(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(200, self._state.bump(params["client_id"], params["record_id"]))

    def _get_faults(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(200, self._state.faults())

    def _put_faults(self, request: Request, params: Mapping[str, str]) -> Reply:
        config = _parse_body(FaultConfig, request.body)
        self._state.configure_faults(config)
        return Reply(200, config)

    def _ack_report(self, request: Request, params: Mapping[str, str]) -> Reply:
        query = _parse_query(AcksQuery, request.query)
        return Reply(200, self._state.ack_report(query.client_id))

    def _stats(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(200, self._state.stats())

    def _rate(self, request: Request, params: Mapping[str, str]) -> Reply:
        query = _parse_query(RateQuery, request.query)
        return Reply(200, self._state.rate(query.window_ms))

    def _get_credentials(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(200, self._state.keyring.view(params["client_id"]))

    def _put_credentials(self, request: Request, params: Mapping[str, str]) -> Reply:
        body = _parse_body(CredentialsRequest, request.body)
        return Reply(200, self._state.keyring.replace(params["client_id"], body.tokens))

    def _delete_credentials(self, request: Request, params: Mapping[str, str]) -> Reply:
        return Reply(200, self._state.keyring.clear(params["client_id"]))

    def _credential_faults(self, request: Request, params: Mapping[str, str]) -> Reply:
        body = _parse_body(CredentialFaultsRequest, request.body)
        faults = self._state.keyring.set_faults(params["client_id"], refuse_new=body.refuse_new)
        return Reply(200, faults)


def _injected(decision: Decision) -> Reply:
    match decision.fault:
        case Fault.TIMEOUT:
            # The caller is meant to give up first; whatever follows is never read.
            time.sleep(decision.timeout_seconds)
            return Reply(504, ErrorBody(error="injected timeout"))
        case Fault.THROTTLE:
            return Reply(
                429,
                ErrorBody(error="injected throttling"),
                {"Retry-After": str(decision.retry_after_seconds)},
            )
        case Fault.ACK_ERROR:
            return Reply(503, ErrorBody(error="injected ack failure"))
        case _:
            return Reply(503, ErrorBody(error="injected failure"))


class _HttpHandler(BaseHTTPRequestHandler):
    server: "ExternalSystemServer"
    protocol_version = "HTTP/1.1"  # keep-alive, as the platform's pooled client expects
    # Headers and body leave in separate writes; with Nagle on, each answer waits ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve()

    def do_POST(self) -> None:  # noqa: N802
        self._serve()

    def do_PUT(self) -> None:  # noqa: N802
        self._serve()

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve()

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve()

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # traffic is reported by /_admin/stats; logging every call drowns the demo output

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib answers unparsable requests with HTML; callers here expect the JSON shape.
        self.close_connection = True
        self._send(Reply(code, ErrorBody(error=message or HTTPStatus(code).phrase)))

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except HttpError as exc:
            # The unread body would be parsed as the next request, so the connection must go.
            self.close_connection = True
            self._send(exc.reply())
            return
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        request = Request(self.command, url.path, query, body, self.headers.get("Authorization"))
        self._send(self.server.api.handle(request))

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "chunked bodies are not supported: send Content-Length")
        raw = self.headers.get("Content-Length", "0")
        try:
            length = int(raw)
        except ValueError as exc:
            raise HttpError(400, f"Content-Length: not an integer: {raw!r}") from exc
        if length < 0:
            raise HttpError(400, f"Content-Length: negative: {length}")
        if length > MAX_BODY_BYTES:
            raise HttpError(413, f"body: larger than {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _send(self, reply: Reply) -> None:
        payload = reply.body.model_dump_json().encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller gave up, e.g. on an injected timeout


class ExternalSystemServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler sleeping out an injected timeout must not block shutdown

    def __init__(self, address: tuple[str, int], state: State | None = None) -> None:
        self.state = state or State()
        self.api = Api(self.state)
        super().__init__(address, _HttpHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall for seconds without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def start_server(
    host: str = "127.0.0.1", port: int = 0
) -> tuple[ExternalSystemServer, threading.Thread]:
    """Serve in a daemon thread; stop with ``server.shutdown(); server.server_close()``."""
    server = ExternalSystemServer((host, port))
    # A short poll keeps shutdown() quick, which adds up over a test suite.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return server, thread
