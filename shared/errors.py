"""One error tree for the whole gateway. Each error knows its HTTP status, stable code and whether a retry may
help; `shared.web.responses.error_response` is the single place that turns one into HTTP."""
from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    # OpenAI-style category, so OpenAI SDKs raise the matching exception class on the data plane.
    type: ClassVar[str] = "server_error"
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if code is not None:
            self.code = code  # type: ignore[misc]  # a finer code within the same status class

    def to_body(self) -> dict[str, Any]:
        # Always the same four keys (details may be null), so clients can rely on the shape.
        return {"error": {"code": self.code, "message": self.message, "type": self.type, "details": self.details}}


class BadRequest(GatewayError):
    status, code, type = 400, "bad_request", "invalid_request_error"


class RequestExceedsQuota(BadRequest):
    """The call's own estimate (input + the completion it asks for) is larger than a quota's whole limit: no
    retry can succeed, the request itself must shrink. Refused before any quota counter is touched."""

    code = "request_exceeds_quota"


class MalformedJson(BadRequest):
    code = "malformed_json"


class JsonTooDeep(BadRequest):
    """The body nests arrays/objects deeper than the gateway parses (refused before any parser recurses)."""

    code = "json_too_deep"


class InvalidQuery(BadRequest):
    code = "invalid_query"


class InvalidRequest(BadRequest):
    """An OpenAI-shaped data-plane body that does not match its contract: 400 like OpenAI (SDKs raise
    BadRequestError), `details` names each field."""

    code = "invalid_request"


class ValidationFailed(GatewayError):
    """Body or query parameters do not match the contract; `details` lists each field path."""

    status, code, type = 422, "validation_error", "invalid_request_error"


class PayloadTooLarge(GatewayError):
    status, code, type = 413, "payload_too_large", "invalid_request_error"


class UnsupportedMediaType(GatewayError):
    status, code, type = 415, "unsupported_media_type", "invalid_request_error"


class Unauthenticated(GatewayError):
    status, code, type = 401, "unauthenticated", "authentication_error"


class Forbidden(GatewayError):
    status, code, type = 403, "forbidden", "permission_error"


class PillarDisabled(Forbidden):
    """The pillar is switched off for this project or globally; registrations are kept."""

    code = "pillar_disabled"


class NotFound(GatewayError):
    status, code, type = 404, "not_found", "invalid_request_error"


class MethodNotAllowed(GatewayError):
    status, code, type = 405, "method_not_allowed", "invalid_request_error"


class Conflict(GatewayError):
    status, code, type = 409, "conflict", "invalid_request_error"


class AlreadyExists(Conflict):
    code = "already_exists"


class ConcurrentUpdate(Conflict):
    """Somebody else changed the resource between our read and our write; re-read and try again."""

    code = "concurrent_update"
    retryable = True


class InvalidStoredDocument(Conflict):
    """A stored document no longer matches its contract (written by an older version or edited by hand).
    It is reported, never served; an admin deletes it (or replaces it) to repair it."""

    code = "invalid_stored_document"


class PreconditionFailed(GatewayError):
    """The client's If-Match ETag is stale."""

    status, code, type = 412, "precondition_failed", "invalid_request_error"


class DependencyUnavailable(GatewayError):
    """Cosmos DB or Storage cannot be reached; nothing was written."""

    status, code, type = 503, "dependency_unavailable", "server_error"
    retryable = True


class GatewayOverloaded(GatewayError):
    """The worker is at its in-flight limit and its wait queue is full (or the wait timed out): shed before any
    work, with Retry-After (shared/web/admission.py, docs/runbook.md "Overload")."""

    status, code, type = 503, "gateway_overloaded", "server_error"
    retryable = True


class ConfigurationError(GatewayError):
    """An app setting is malformed: the app stays indexed but refuses work until it is fixed (docs/runbook.md).
    `details` names each setting and why; never its value (it may be a secret)."""

    status, code, type = 503, "configuration_error", "server_error"


class UpstreamBadResponse(GatewayError):
    """A model backend answered success with a body the gateway cannot read (not JSON, not an object)."""

    status, code, type = 502, "upstream_bad_response", "server_error"


class RouteNotFound(NotFound):
    """No operation serves this path (any method)."""

    code = "route_not_found"


class InternalError(GatewayError):
    pass


# ---- the governed data plane (shared/pipeline): resolution, admission, routing

class ResourceNotFound(NotFound):
    """The named model / tool / agent does not exist in the project, or no longer serves (retired, suspended)."""


class ModelNotFound(ResourceNotFound):
    code = "model_not_found"


class ResponseNotFound(ResourceNotFound):
    """A Responses API id this gateway did not serve to the caller's project (or no longer remembers)."""

    code = "response_not_found"


class ResourceNotAllowed(Forbidden):
    """The virtual key's scope for this pillar does not include the resource."""


class ModelNotAllowed(ResourceNotAllowed):
    code = "model_not_allowed"


class CapabilityNotSupported(BadRequest):
    code = "capability_not_supported"


class RateLimited(GatewayError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"
    retryable = True


class BudgetExhausted(Forbidden):
    code = "budget_exhausted"


class CostBudgetExhausted(BudgetExhausted):
    code = "cost_budget_exhausted"


class UpstreamUnavailable(GatewayError):
    status, code, type = 502, "upstream_unavailable", "server_error"
    retryable = True


class UpstreamTimeout(GatewayError):
    status, code, type = 504, "upstream_timeout", "server_error"
    retryable = True


class CapacityExhausted(GatewayError):
    """Every target's own capacity (a backend's TPM) is used up for this minute."""

    status, code, type = 429, "backend_capacity_exhausted", "rate_limit_error"
    retryable = True


class NoBackendAvailable(GatewayError):
    status, code, type = 503, "no_backend_available", "server_error"
    retryable = True


class McpRefused(GatewayError):
    """Tools pillar: a tools/call refused by a governance step (arguments, approval, policy). Carries the JSON-RPC
    error the MCP client receives; `status` is only the request-log status (MCP answers on HTTP 200)."""

    status, code, type = 400, "mcp_refused", "invalid_request_error"

    def __init__(self, message: str, *, rpc_error: dict, status: int = 400, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.rpc_error = rpc_error
        self.status = status  # type: ignore[misc]  # per refusal: 400 arguments, 403 policy, 202 approval pending


class GuardrailBlocked(BadRequest):
    """A guardrail policy's check refused the request (or the answer); `details` names the policy and the check,
    never the text that matched."""

    code = "guardrail_blocked"


class GuardrailUnavailable(GatewayError):
    """A fail-closed remote guardrail (Azure AI Content Safety) could not give a verdict in time."""

    status, code, type = 503, "guardrail_unavailable", "server_error"
    retryable = True

# ---- agents pillar


class Gone(GatewayError):
    status, code, type = 410, "gone", "invalid_request_error"


class InvalidTransition(Conflict):
    """A lifecycle change the state machine does not allow (e.g. retired → published)."""

    code = "invalid_transition"


class AgentNotInvocable(Conflict):
    """Base of the states in which an agent takes no calls; `details` names its state (and replacement)."""

    code = "agent_not_invocable"


class AgentSuspended(Forbidden):
    """The per-agent kill switch is on; the registration and its history are kept."""

    code = "agent_suspended"


class AgentRetired(Gone):
    code = "agent_retired"


class AgentBusy(RateLimited):
    """The agent (or this key on it) already has its maximum of calls in flight."""

    code = "agent_concurrency_exceeded"


class MaxTurnsExceeded(Forbidden):
    """The conversation (A2A contextId/taskId) already had its maximum of turns with this agent."""

    code = "max_turns_exceeded"
