"""Identity with real PyJWT tokens and real keys: what is accepted, what is refused and
what the refusal says; keys compared by hash; limits that only lower; who may use
which session; failed attempts rate limited per address."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from codex.config import Settings
from codex.errors import ConfigError, Forbidden, RateLimited, Unauthorized
from codex.identity.access import DRIVE, WATCH, check_access
from codex.identity.credentials import Authenticator, Identity, bearer
from codex.identity.guard import Guard
from codex.sessions.admission import RateLimiter

SECRET = "s" * 40
HS = dataclasses.replace(Settings(), token_secret=SECRET)


def token(
    claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256", **headers: Any
) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)


def fresh(**claims: Any) -> dict[str, Any]:
    return {"sub": "ada", "exp": int(time.time()) + 600, **claims}


def refusal(auth: Authenticator, credential: str | None) -> str:
    with pytest.raises(Unauthorized) as caught:
        auth.authenticate(credential)
    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    if credential:
        assert credential not in caught.value.message  # never echoed
    return caught.value.message


def test_identity_off_asks_nobody() -> None:
    assert Authenticator(Settings()).authenticate(None) is None
    assert Authenticator(Settings()).authenticate("anything") is None


def test_a_valid_hs256_token_names_its_learner() -> None:
    identity = Authenticator(HS).authenticate(token(fresh()))
    assert identity == Identity("sub:ada")


def test_bad_tokens_are_refused_saying_why() -> None:
    auth = Authenticator(HS)
    now = int(time.time())
    assert "expired" in refusal(auth, token(fresh(exp=now - 3600)))
    assert "not valid yet" in refusal(auth, token(fresh(nbf=now + 3600)))
    assert "signature" in refusal(auth, token(fresh(), key="t" * 40))
    assert "'exp'" in refusal(auth, token({"sub": "ada"}))
    assert "'sub'" in refusal(auth, token({"exp": now + 60}))
    assert "required" in refusal(auth, None)
    assert "neither" in refusal(auth, "not.a.token")
    assert "too long" in refusal(auth, "x" * 9000)
    unsigned = jwt.encode(fresh(), None, algorithm="none")
    assert "algorithm" in refusal(auth, unsigned)
    # Within the leeway, a token just expired still passes (clocks differ a little).
    assert auth.authenticate(token(fresh(exp=now - 5))) is not None


def test_issuer_and_audience_are_checked_when_configured() -> None:
    auth = Authenticator(dataclasses.replace(HS, token_issuer="lms", token_audience="codex"))
    assert auth.authenticate(token(fresh(iss="lms", aud="codex"))) is not None
    assert "issuer" in refusal(auth, token(fresh(iss="other", aud="codex")))
    assert "audience" in refusal(auth, token(fresh(iss="lms", aud="other")))
    assert "'iss'" in refusal(auth, token(fresh(aud="codex")))


def pem_public(private: Any) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_rs256_and_es256_with_a_public_key_and_no_algorithm_confusion(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "public.pem"
    path.write_bytes(pem_public(rsa_key))
    auth = Authenticator(dataclasses.replace(Settings(), token_public_key=str(path)))
    assert auth.authenticate(token(fresh(), rsa_key, "RS256")) == Identity("sub:ada")
    # The public key (which anyone may have) used as an HMAC secret: refused.
    confused = token(fresh(), "irrelevant-" * 4, "HS256")
    assert "algorithm" in refusal(auth, confused)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert "signature" in refusal(auth, token(fresh(), other, "RS256"))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(pem_public(ec_key))
    auth = Authenticator(dataclasses.replace(Settings(), token_public_key=str(path)))
    assert auth.authenticate(token(fresh(), ec_key, "ES256")) == Identity("sub:ada")
    with pytest.raises(ConfigError):
        Authenticator(dataclasses.replace(Settings(), token_public_key=str(tmp_path / "none")))


def test_limit_claims_only_lower_the_servers_limits() -> None:
    auth = Authenticator(HS)
    lower = auth.authenticate(
        token(fresh(codex={"timeLimit": 2, "memoryLimitMb": 64, "executionsPerMinute": 5}))
    )
    assert lower == Identity("sub:ada", 2.0, 64, 5)
    higher = auth.authenticate(
        token(fresh(codex={"timeLimit": 999, "memoryLimitMb": 10**6, "executionsPerMinute": "x"}))
    )
    assert higher == Identity("sub:ada")  # the server's limits stand
    teacher = auth.authenticate(token(fresh(sub="t", observe=["s1", "s2", 3])))
    assert teacher is not None and teacher.observe == frozenset({"s1", "s2"})


def test_api_keys_inline_and_from_a_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("key-from-file\n\n  second-key  \n")
    auth = Authenticator(dataclasses.replace(Settings(), api_keys=("inline-key", f"@{keys}")))
    a, b = auth.authenticate("inline-key"), auth.authenticate("second-key")
    assert a is not None and b is not None and a.subject.startswith("key:") and a != b
    assert auth.authenticate("key-from-file") is not None
    assert "API key" in refusal(auth, "wrong-key")
    assert "inline-key" not in repr(auth.__dict__)  # kept hashed only
    with pytest.raises(ConfigError):
        Authenticator(dataclasses.replace(Settings(), api_keys=(f"@{tmp_path / 'missing'}",)))


def test_the_bearer_header() -> None:
    assert bearer(None) is None and bearer("") is None
    assert bearer("Bearer abc.def") == "abc.def" and bearer("bearer  xyz ") == "xyz"
    for bad in ("Basic dXNlcg==", "Bearer", "Bearer   ", "abc"):
        with pytest.raises(Unauthorized):
            bearer(bad)


def test_settings_refuse_two_kinds_of_token_key_and_a_short_secret() -> None:
    with pytest.raises(ConfigError, match="token_secret"):
        dataclasses.replace(Settings(), token_secret=SECRET, token_public_key="/k").validate()
    with pytest.raises(ConfigError, match="at least 32"):
        dataclasses.replace(Settings(), token_secret="short").validate()


def test_who_may_use_a_session() -> None:
    ada, bob = Identity("sub:ada"), Identity("sub:bob")
    teacher = Identity("sub:t", observe=frozenset({"s1"}))
    check_access(None, None, "s1", DRIVE)  # identity off: the id is the key
    check_access(ada, "sub:ada", "s1", DRIVE)
    check_access(teacher, "sub:ada", "s1", WATCH)
    for who, drive in ((bob, WATCH), (bob, DRIVE), (teacher, DRIVE), (None, WATCH)):
        with pytest.raises(Forbidden):
            check_access(who, "sub:ada", "s1", drive)
    with pytest.raises(Forbidden):
        check_access(teacher, "sub:ada", "s2", WATCH)


def test_failed_attempts_are_limited_per_address_before_the_credential_is_checked() -> None:
    s = dataclasses.replace(HS, rate_limit_auth_failures="3/minute")

    async def scenario() -> None:
        guard = Guard(s, RateLimiter(s))
        for _ in range(3):
            with pytest.raises(Unauthorized):
                await guard.identify("bad", "10.0.0.1")
        with pytest.raises(RateLimited):  # even a good token, from this address, now
            await guard.identify(token(fresh()), "10.0.0.1")
        assert await guard.identify(token(fresh()), "10.0.0.2") == Identity("sub:ada")

    asyncio.run(scenario())
