"""Typed errors for every failure the API can report.

The hierarchy says what a caller may do: retry (RetryableError), wait (RateLimitedError),
re-read state before anything else (OutcomeUnknown), or give up on this action
(GameRuleError and its named codes, NotFoundError, AuthError).
"""

from __future__ import annotations

from datetime import datetime


class ApiError(Exception):
    """An error answer or a failed exchange; `code` and `data` come from the error body."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 data: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.data = data or {}


class RetryableError(ApiError):
    """A 5xx answer or a network failure: trying again later may work."""


class RateLimitedError(RetryableError):
    """429: the request was not processed."""


class ProtocolError(RetryableError):
    """A 2xx answer whose body is not what the API promises: HTML, malformed or truncated
    JSON, or JSON of the wrong shape. A read may be sent again; a trade never is."""

    def __init__(self, what: str, problem: str, body: bytes | str | None, *,
                 status: int | None = None):
        raw = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
        preview = " ".join(raw.split())[:80]
        super().__init__(f"{what}: answered {status} with a body the API does not promise "
                         f"({problem}): {preview!r}", status=status)
        self.preview = preview


class OutcomeUnknown(ApiError):
    """A state-changing request failed in a way that leaves open whether it happened.

    Never repeat it blindly: read the ship (cargo, nav) or the market's transactions first.
    """


class Cancelled(ApiError):
    """The caller asked to stop while the request waited for its turn."""


class AuthError(ApiError):
    """401: the token is missing, malformed or not valid on this server."""


class ServerResetError(AuthError):
    """401 for a token from before the last server reset: register a new agent."""


class NotFoundError(ApiError):
    """404: the ship, waypoint or system does not exist (a lost ship answers this)."""


class ValidationError(ApiError):
    """422: the request body was refused."""


class GameRuleError(ApiError):
    """A 4xx that the game's rules produced; the subclasses name the common codes."""


class CooldownError(GameRuleError):
    CODE = 4000


class NavigateInTransitError(GameRuleError):
    CODE = 4200


class InvalidDestinationError(GameRuleError):
    CODE = 4201


class OutsideSystemError(GameRuleError):
    CODE = 4202


class InsufficientFuelError(GameRuleError):
    CODE = 4203

    @property
    def fuel_required(self) -> int | None:
        return self.data.get("fuelRequired")

    @property
    def fuel_available(self) -> int | None:
        return self.data.get("fuelAvailable")


class SameDestinationError(GameRuleError):
    CODE = 4204


class ShipInTransitError(GameRuleError):
    CODE = 4214

    @property
    def seconds_to_arrival(self) -> int:
        return int(self.data.get("secondsToArrival", 0))

    @property
    def arrival(self) -> datetime | None:
        raw = self.data.get("arrival")
        return datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None


class ShipPurchaseCreditsError(GameRuleError):
    CODE = 4216


class CargoExceedsLimitError(GameRuleError):
    CODE = 4217


class CargoMissingError(GameRuleError):
    CODE = 4218


class CargoUnitCountError(GameRuleError):
    CODE = 4219


class NotDockedError(GameRuleError):
    """4244, and 4225 for refuelling: the ship must be docked."""

    CODE = 4244


class RefuelNotDockedError(NotDockedError):
    CODE = 4225


class RefuelInvalidWaypointError(GameRuleError):
    CODE = 4226


class CargoFullError(GameRuleError):
    CODE = 4228


class NotInOrbitError(GameRuleError):
    CODE = 4236


class ShipNotPresentError(GameRuleError):
    CODE = 4245


class InsufficientCreditsError(GameRuleError):
    CODE = 4600


class GoodNotSoldHereError(GameRuleError):
    """4601: the market does not sell this good."""

    CODE = 4601


class GoodNotBoughtHereError(GameRuleError):
    """4602: the market will not buy this good."""

    CODE = 4602


class MarketNotFoundError(GameRuleError):
    CODE = 4603


class TradeVolumeError(GameRuleError):
    """4604: more units than the good's tradeVolume in one transaction."""

    CODE = 4604

    @property
    def trade_volume(self) -> int | None:
        return self.data.get("tradeVolume")


BY_CODE: dict[int, type[GameRuleError]] = {
    cls.CODE: cls for cls in [*GameRuleError.__subclasses__(), RefuelNotDockedError]
}


def from_response(status: int, body: object, what: str) -> ApiError:
    """The typed error for an error answer; `what` is e.g. `POST /my/ships/X-1/purchase`."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    code = error.get("code")
    message = str(error.get("message") or f"HTTP {status}")
    data = error.get("data") if isinstance(error.get("data"), dict) else None
    text = f"{what}: {message}" + (f" (code {code})" if code not in (None, status) else "")
    kwargs = {"status": status, "code": code, "data": data}
    if status == 401:
        if "reset" in message.lower():
            return ServerResetError(
                f"{what}: the server was reset since this token was issued; register a new "
                "agent (goods-factory register) and use its token", **kwargs)
        return AuthError(f"{what}: the token was refused ({message})", **kwargs)
    if status == 404:
        return NotFoundError(text, **kwargs)
    if status == 422:
        return ValidationError(text, **kwargs)
    if status == 429:
        return RateLimitedError(text, **kwargs)
    if status >= 500:
        return RetryableError(text, **kwargs)
    return BY_CODE.get(code, GameRuleError)(text, **kwargs)
