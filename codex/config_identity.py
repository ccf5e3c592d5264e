"""The settings of identity: API keys, learner tokens, the metrics token. All empty by
default: then nobody is asked who they are, as before identity existed. A base of
codex.config.Settings, declared here to keep each module small."""

from __future__ import annotations

from dataclasses import dataclass

from codex.config_request import setting


@dataclass(frozen=True)
class IdentitySettings:
    api_keys: tuple[str, ...] = setting(
        (),
        "Comma-separated API keys for server-to-server callers (`Authorization: Bearer "
        "<key>`), or `@path` for a file with one key per line. Kept hashed in memory.",
    )
    token_secret: str = setting(
        "",
        "Secret (at least 32 characters) of the HS256 learner tokens (JWT) the host "
        "application mints. Empty: no HS256 tokens.",
    )
    token_public_key: str = setting(
        "",
        "Path to the PEM public key of RS256 or ES256 learner tokens (instead of "
        "token_secret). Empty: none.",
    )
    token_issuer: str = setting("", "The `iss` every learner token must have, if set.")
    token_audience: str = setting("", "The `aud` every learner token must name, if set.")
    token_leeway: float = setting(
        30.0, "Seconds of clock difference allowed when checking `exp` and `nbf`."
    )
    metrics_token: str = setting(
        "", "Bearer token that /metrics requires, if set (Prometheus `authorization`)."
    )
    rate_limit_auth_failures: str = setting(
        "30/minute", "Failed authentications allowed per client address (empty: any)."
    )

    def identity_problem(self) -> tuple[str, str] | None:
        """(setting, what is wrong) for the first bad identity setting, or None."""
        if self.token_secret and self.token_public_key:
            return "token_secret", "set token_secret or token_public_key, not both"
        if self.token_secret and len(self.token_secret) < 32:
            return "token_secret", "must be at least 32 characters (shorter HS256 keys are weak)"
        if self.token_leeway < 0:
            return "token_leeway", "must be 0 or more"
        return None
