"""Errors a user can meet. Each says what went wrong and what to do; the CLI prints one line."""

from __future__ import annotations


class CallFortError(Exception):
    """Base of all errors the CLI and API turn into a clear message."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(CallFortError):
    """The deployment config is missing, malformed or names something unknown."""

    exit_code = 3


class PluginError(CallFortError):
    """A required plugin is missing or broken, or a plugin breaks the contract."""

    exit_code = 3


class InputError(CallFortError):
    """Input (a file, an argument, a protocol message) is malformed."""

    exit_code = 2


class NotFound(CallFortError):
    exit_code = 4
    http_status = 404


class AccessDenied(CallFortError):
    exit_code = 5
    http_status = 403


class AuthenticationFailed(CallFortError):
    exit_code = 5
    http_status = 401


class ApprovalRequired(CallFortError):
    """The function is four-eyes: request it with ``cf request`` and have it approved."""

    exit_code = 6
    http_status = 403


class IntegrityError(CallFortError):
    """Stored data or the audit trail does not match what was written: possible manipulation."""

    exit_code = 7
    http_status = 500


class StoreError(CallFortError):
    """A media store failed or refused an operation."""

    exit_code = 8
    http_status = 503


class ConflictError(CallFortError):
    """The operation conflicts with the current state (e.g. a legal hold, an existing object)."""

    exit_code = 9
    http_status = 409


class TooManyRequests(CallFortError):
    """Too many attempts (e.g. log-ins) from this address or for this account: wait and retry.

    ``retry_after`` is the number of seconds to wait (HTTP ``Retry-After``)."""

    exit_code = 5
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, int(retry_after))
