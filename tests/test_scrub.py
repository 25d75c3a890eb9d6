"""Scrubbing: planted personal data and secrets never survive, ids/digests/timestamps/paths are
kept byte for byte, placeholders are stable, identifiers keep their ids, sensitive keys and the
configuration API. (``test_secrets.py`` plants every kind through every way into the file.)"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from taskexec import scrub
from taskexec.scrub import (
    SENSITIVE_KEYS,
    configure,
    is_sensitive_key,
    reset,
    scrub_identifier,
    scrub_key,
    scrub_text,
    scrub_value,
)
from taskexec.stackhash import normalize_message, stack_hash_from_text

# Surrounding text: any printable-ish unicode; the planted value is separated by spaces.
noise = st.text(st.characters(exclude_categories=("Cs", "Zs", "Cc")), max_size=30)

_LOCAL = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-"
_LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)

ipv4s = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))


@st.composite
def emails(draw: st.DrawFn) -> str:
    local = draw(st.text(_LOCAL, min_size=1, max_size=20))
    domain = draw(
        st.one_of(
            st.builds(
                lambda labels, tld: ".".join([*labels, tld]),
                st.lists(_LABEL, min_size=1, max_size=3),
                st.from_regex(r"[a-z]{2,6}", fullmatch=True),
            ),
            ipv4s,
            ipv4s.map(lambda ip: f"[{ip}]"),
        )
    )
    return f"{local}@{domain}"


def _plausible_ip6(text: str) -> bool:
    """The documented rule: a '::' form needs 3+ groups, a 4-digit group, an IPv4 tail, or ::1."""
    addr = text.split("%")[0]
    groups = [g for g in addr.split(":") if g]
    return (
        "::" not in addr
        or addr == "::1"
        or "." in addr
        or len(groups) >= 3
        or any(len(g) == 4 for g in groups)
    )


@st.composite
def ipv6s(draw: st.DrawFn) -> str:
    groups = draw(
        st.lists(
            st.sampled_from([0, 0, 1, 0xFE80, 0xDB8]) | st.integers(0, 0xFFFF),
            min_size=8,
            max_size=8,
        )
    )
    addr = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
    form = draw(st.sampled_from(["compressed", "exploded", "upper", "zone", "mapped"]))
    if form == "mapped":
        text = f"::ffff:{draw(ipv4s)}"
    elif form == "exploded":
        text = addr.exploded
    else:
        text = addr.compressed.upper() if form == "upper" else addr.compressed
        if form == "zone":
            text += "%eth0"
    assume(_plausible_ip6(text))
    return text


uuids = st.builds(
    lambda n, up: str(uuid.UUID(int=n)).upper() if up else str(uuid.UUID(int=n)),
    st.integers(0, 2**128 - 1),
    st.booleans(),
)


def _plant(prefix: str, value: str, suffix: str) -> str:
    assume(value not in prefix and value not in suffix)
    return f"{prefix} {value} {suffix}"


def _replaced(out: str | None, value: str, label: str) -> bool:
    """The value is gone, replaced by its label, or by <secret> when the noise before it reads
    as a secret's name (``PRIVATEKEY ::1`` is a key and its value: the address goes with it)."""
    return out is not None and value not in out and (label in out or "<secret>" in out)


@given(noise, emails(), noise)
def test_planted_email_is_replaced(prefix: str, email: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, email, suffix))
    assert _replaced(out, email, "<email>")


@given(noise, ipv4s, noise)
def test_planted_ipv4_is_replaced(prefix: str, ip: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, ip, suffix))
    assert _replaced(out, ip, "<ip>")


@given(noise, ipv6s(), noise)
@example("", "::1", "")
@example("PRIVATEKEY", "::1", "")
@example("at", "fe80::1%eth0", "x")
@example("a", "::ffff:10.0.0.1", "b")
def test_planted_ipv6_is_replaced(prefix: str, ip: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, ip, suffix))
    assert _replaced(out, ip, "<ip>")


@given(noise, uuids, noise)
def test_planted_uuid_is_replaced(prefix: str, value: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, value, suffix))
    assert _replaced(out, value, "<uuid>")


fixed_offsets = st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23)).map(
    timezone
)
aware = st.datetimes(
    min_value=datetime(1900, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.timezones() | fixed_offsets,
)


@given(
    st.binary(min_size=16, max_size=16).map(bytes.hex),  # same as secrets.token_hex(16)
    st.binary(min_size=8, max_size=8).map(bytes.hex),
    st.binary(max_size=64).map(lambda b: hashlib.sha256(b).hexdigest()),
    aware,
)
def test_ids_digests_and_timestamps_are_kept(
    trace: str, span: str, digest: str, dt: datetime
) -> None:
    # A span id of 16 decimal digits that passes the Luhn check reads as a card (documented).
    assume(not (span.isdigit() and scrub_text(span) != span))
    zulu = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for value in (trace, span, digest, zulu, dt.isoformat(), dt.strftime("%H:%M:%S")):
        assert scrub_text(value) is value
        assert scrub_identifier(value) is value
        assert scrub_key(value) is value
    line = f"trace_id={trace} span_id={span} sha256:{digest} at {zulu} ({dt.isoformat()}) v1.2.3"
    assert scrub_text(line) is line


def test_secrets_token_ids_are_kept() -> None:
    for _ in range(500):
        line = f"{secrets.token_hex(16)}-{secrets.token_hex(8)} {secrets.token_hex(32)}"
        assert scrub_text(line) == line


SECRET_BITS = [
    "password=hunter2!x",
    "Authorization: Bearer abcDEF0123456789xyz",
    "sk-proj-AbCdEfGh0123456789ijklmnop",
    "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "4111 1111 1111 1111",
    "+44 20 7946 0958",
    "078-05-1120",
    "DE89 3704 0044 0532 0130 00",
    "https://u:p@h.io/",
    '"token": "abc"',
    "<secret>",
    "<email>",
    "=",
    ":",
    '"',
    "'",
    "\\",
    "Cookie: a=1; b=2",
    "-----BEGIN PRIVATE KEY-----\nMIIabc\n",
    "-----END PRIVATE KEY-----",
]
pii_soup = st.lists(
    emails()
    | ipv4s
    | ipv6s()
    | uuids
    | noise
    | st.sampled_from([":", "::", ".", "-", "@", " ", "\n", *SECRET_BITS])
    | st.text("0123456789 -.()+", max_size=12),
    max_size=12,
).map("".join)


@given(st.text() | pii_soup)
@example("1:2:3:4:5:6::1.2.3.4")
@example("user@[10.0.0.1]:25 x@y.io.")
@example("password=https://u:p@h/ token=<secret>x")
@example("4111 1111 1111 1111 1111 1111 1111 1111")
def test_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once
    ident = scrub_identifier(text)
    assert scrub_identifier(ident) == ident


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail bob.smith+tag@example.co.uk now", "mail <email> now"),
        ("bounce to root@10.0.0.1 and x@[IPv6:2001:db8::1]", "bounce to <email> and <email>"),
        ("from 192.168.1.254:8080, not 256.1.1.1", "from <ip>:8080, not 256.1.1.1"),
        ("not an address: 1.2.3.4.5 or v10.0.0.1", None),
        ("req 123E4567-E89B-12D3-A456-426614174000 done", "req <uuid> done"),
        ("job-123e4567-e89b-12d3-a456-426614174000.log", "job-<uuid>.log"),
        ("[::1]:8080 fe80::1%eth0 ::ffff:10.0.0.1 ip:2001:db8::7", "[<ip>]:8080 <ip> <ip> ip:<ip>"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329 refused", "<ip> refused"),
        ("std::vector<int> std::map a[::2] b[1::2] x[::-1] Foo::add", None),
        ("mac 00:1a:2b:3c:4d:5e at 06:00:00 and 2025-11-05T06:00:00+01:00", None),
        ("version 1.2.3 in /usr/lib/python3.11/json/decoder.py line 12", None),
        ("@functools.wraps(fn) and a @ b.T", None),
    ],
)
def test_examples(text: str, expected: str | None) -> None:
    assert scrub_text(text) == (text if expected is None else expected)


def test_none_and_empty_pass_through() -> None:
    assert scrub_text(None) is None
    assert scrub_text("") == ""


def test_scrub_value_recurses() -> None:
    value = {
        "a@b.com": [
            "x@y.org",
            ("10.0.0.1", 3, None),
            {"deep": "id 123e4567-e89b-12d3-a456-426614174000"},
        ],
        "n": 1.5,
        "ok": True,
    }
    assert scrub_value(value) == {
        "<email>": ["<email>", ["<ip>", 3, None], {"deep": "id <uuid>"}],
        "n": 1.5,
        "ok": True,
    }
    assert scrub_value(("a@b.com",)) == ["<email>"]
    assert scrub_value(7) == 7


def test_clean_strings_are_fast() -> None:
    """A loose guard (~50x the measured cost) against a pattern that scans slowly."""
    text = "worker finished job 42 at 2025-11-05T06:00:00Z, status ok, took 12.5 ms; nothing odd."
    start = time.perf_counter()
    for _ in range(20_000):
        scrub_text(text)
    assert time.perf_counter() - start < 1.0


# -- secrets -------------------------------------------------------------------------------------

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # shaped secrets
        (
            "key file:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3V\nS5JJcds3x==\n"
            "-----END RSA PRIVATE KEY-----\ndone",
            "key file:\n<private-key>\ndone",
        ),
        (
            "truncated -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk",
            "truncated <private-key>",
        ),
        (
            "connect postgres://app:s3cr3t@db.internal:5432/app failed",
            "connect postgres://<credentials>@db.internal:5432/app failed",
        ),
        (
            "redis://:hunter2@cache:6379/0 and https://bob:p@ss@example.com/x",
            "redis://<credentials>@cache:6379/0 and https://<credentials>@example.com/x",
        ),
        (f"session {JWT} expired", "session <jwt> expired"),
        (
            "denied for AKIAIOSFODNN7EXAMPLE and ASIAY34FZKBOKMUTVV7A",
            "denied for <aws-key> and <aws-key>",
        ),
        (
            "push ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789 and "
            "github_pat_11ABCDEFG0123456789_abcdefgh",
            "push <github-token> and <github-token>",
        ),
        (
            "stripe sk_live_51HcdEfGhIjKlMnOp, rk_test_abcdef012345, whsec_abcdEFGH01234567ijkl",
            "stripe <stripe-key>, <stripe-key>, <stripe-key>",
        ),
        (
            "keys sk-proj-AbCdEfGhIjKlMnOp0123456789 sk-ant-api03-AbCdEfGh_0123456789-ijkl",
            "keys <openai-key> <anthropic-key>",
        ),
        (
            "slack xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp via "
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "slack <slack-token> via https://hooks.slack.com/<slack-webhook>",
        ),
        (
            "google AIzaSyA1234567890abcdefghijklmnopqrstuv GOCSPX-abcdefghij0123456789AB "
            "ya29.a0AfH6SMBx0123456789abcdefghij",
            "google <google-key> <google-key> <google-token>",
        ),
        (
            "401: Authorization: Bearer AbCdEf0123456789.ghIJ-kl_mn",
            "401: Authorization: Bearer <bearer-token>",
        ),
        (
            "BEARER abcdefgh12345678 and bearer abcdefgh12345678",
            "BEARER <bearer-token> and bearer <bearer-token>",
        ),
        # values after sensitive names
        ("login password=hunter2!x user=bob", "login password=<secret> user=bob"),
        ("GET /a?user=bob&api_key=k3y-123&page=2", "GET /a?user=bob&api_key=<secret>&page=2"),
        ('{"token": "abc def", "n": 1}', '{"token": "<secret>", "n": 1}'),
        ("{'passwd': 'x\\'y', 'ok': 1}", "{'passwd': '<secret>', 'ok': 1}"),
        ('{\\"client_secret\\":\\"abc\\"}', '{\\"client_secret\\":\\"<secret>\\"}'),
        ("X-Api-Key: abc123\nAccept: */*", "X-Api-Key: <secret>\nAccept: */*"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic <secret>"),
        ("Cookie: sessionid=abc; csrftoken=def\nHost: x", "Cookie: <secret>\nHost: x"),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_SECRET_ACCESS_KEY=<secret>",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aws_secret_access_key = <secret>",
        ),
        (
            "run --password=hunter2 --db-password=x",
            "run --password=<secret> --db-password=<secret>",
        ),
        ("Config(token=abc)", "Config(token=<secret>)"),
        (
            "GET /x?key=AbC0123456789dEfGh&a=1 X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0",
            "GET /x?key=<secret>&a=1 X-Amz-Signature=<secret>",
        ),
        # numbers
        ("card 4111 1111 1111 1111 exp 12/29", "card <card> exp 12/29"),
        ("amex 3782-822463-10005, visa 4111111111111111.", "amex <card>, visa <card>."),
        ("order 12 4111 1111 1111 1111 2029", "order 12 <card> 2029"),
        ("ssn 078-05-1120 on file", "ssn <ssn> on file"),
        ("call +44 20 7946 0958 or +1 (415) 555-0132", "call <phone> or <phone>"),
        ("or (415) 555-0132, 415-555-0132, 415.555.0132", "or <phone>, <phone>, <phone>"),
        (
            "uk 020 7946 0958, fr 01 23 45 67 89, de 030 12345678",
            "uk <phone>, fr <phone>, de <phone>",
        ),
        ("iban DE89 3704 0044 0532 0130 00 EUR", "iban <iban> EUR"),
        ("ibans GB82WEST12345698765432 NL91ABNA0417164300", "ibans <iban> <iban>"),
    ],
)
def test_secret_examples(text: str, expected: str) -> None:
    assert scrub_text(text) == expected
    assert scrub_text(expected) == expected


@pytest.mark.parametrize(
    "text",
    [
        "sorted(x, key=len) and cache_key=user:42",
        "max_tokens=4096 token_count=12 tokens: 7",
        "KeyError: 'token'",
        "unexpected token: }",
        "sk-learn-compatible-estimator-wrapper",
        "the bearer of bad news",
        "invalid card 4111 1111 1111 1112",  # fails the Luhn check
        "1234 5678 9012 3456",  # no card issuer starts with 1
        "at 2025-11-05 06:00:00, epoch 1730784000, 1730784000123 ms, took 12.5 s",
        "05.11.2025 10:00 and 2025-11-05T06:00:00+01:00",
        "DE00 3704 0044 0532 0130 00",  # wrong check digits
        "version 3.11.2 build 20251105 pid 12345 port 8080",
        "rows 1 2 3 4 5 6 7 8 9 10 11",
        "span 00f067aa0ba902b7 trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "signature=short key=operator.itemgetter",
    ],
)
def test_look_alikes_are_kept(text: str) -> None:
    assert scrub_text(text) is text


def test_identifiers_keep_ids_and_lose_addresses_and_secrets() -> None:
    path = "exports/123e4567-e89b-12d3-a456-426614174000/2025-11-05/4111111111111111.csv"
    assert scrub_identifier(path) is path
    assert scrub_identifier("job-078-05-1120") == "job-078-05-1120"  # numbers stay in ids
    assert scrub_identifier("reports/bob@example.com/10.0.0.1.json") == "reports/<email>/<ip>.json"
    assert (
        scrub_identifier("s3://u:p@bucket/key?token=abc")
        == "s3://<credentials>@bucket/key?token=<secret>"
    )
    assert (
        scrub_identifier("task-ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789") == "task-<github-token>"
    )
    assert scrub_identifier("date=2025-11-05/key=abcdef0123456789abcd") == (
        "date=2025-11-05/key=abcdef0123456789abcd"  # a strict name needs free text
    )
    assert scrub_identifier(None) is None and scrub_identifier("") == ""


def test_keys_are_kept_or_hashed() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert scrub_key(digest) is digest
    assert scrub_key("job:42") == "job:42"
    secret_key = "job:alice@example.com:1"
    hashed = scrub_key(secret_key)
    assert hashed == hashlib.sha256(secret_key.encode()).hexdigest()
    assert scrub_key("job:bob@example.com:1") != hashed  # still tells runs apart
    assert scrub_key(None) is None


def test_sensitive_keys_replace_values_whole() -> None:
    value = {
        "password": "hunter2",
        "DB_PASSWORD": 1234,
        "X-Api-Key": ["a", "b"],
        "auth": {"user": "bob", "pass": "x"},
        "refreshToken": "abc",
        "has_token": True,
        "token_count": 3,
        "max_tokens": 4096,
        "secret": None,
        "sentry_dsn": "",
        "nested": [{"client_secret": "s", "queue": "slow"}],
    }
    assert scrub_value(value) == {
        "password": "<secret>",
        "DB_PASSWORD": "<secret>",
        "X-Api-Key": "<secret>",
        "auth": "<secret>",
        "refreshToken": "<secret>",
        "has_token": True,
        "token_count": 3,
        "max_tokens": 4096,
        "secret": None,
        "sentry_dsn": "",
        "nested": [{"client_secret": "<secret>", "queue": "slow"}],
    }
    for name in SENSITIVE_KEYS:
        assert is_sensitive_key(name) and is_sensitive_key(name.upper())
    assert not is_sensitive_key("cache_key") and not is_sensitive_key("token_count")


def test_identifier_values_keep_uuids() -> None:
    uid = "123e4567-e89b-12d3-a456-426614174000"
    assert scrub_value([uid, {"parent": uid, "by": "a@b.io"}], identifiers=True) == [
        uid,
        {"parent": uid, "by": "<email>"},
    ]


@pytest.fixture
def configured():
    yield configure
    reset()


def test_configure_patterns_keys_and_allow_list(configured) -> None:
    uid = "123e4567-e89b-12d3-a456-426614174000"
    attrs = {"celery_task_id": uid, "request": uid, "pin": "1234", "customer": "CUST-123456"}
    assert scrub_value(attrs) == {
        "celery_task_id": "<uuid>",
        "request": "<uuid>",
        "pin": "1234",
        "customer": "CUST-123456",
    }
    configured(
        extra_patterns=[(r"\bCUST-\d{6}\b", "<customer>")],
        sensitive_keys=["pin"],
        allow_keys=["celery_task_id", "session_id"],
    )
    assert scrub_value(attrs) == {
        "celery_task_id": uid,  # allow-listed: scrubbed as an identifier
        "request": "<uuid>",
        "pin": "<secret>",
        "customer": "<customer>",
    }
    assert scrub_value({"celery_task_id": "a@b.io"}) == {"celery_task_id": "<email>"}
    assert scrub_text("pin=1234 for CUST-654321") == "pin=<secret> for <customer>"
    assert scrub_text("session_id=abc") == "session_id=abc"  # allowed names stay in text too
    assert scrub_identifier("export-CUST-000001") == "export-<customer>"
    configured(sensitive_keys=[])  # replaces that list only
    assert scrub_value({"pin": "1"}) == {"pin": "1"}
    assert scrub_text("CUST-000002") == "<customer>"
    reset()
    assert scrub_text("CUST-000002") == "CUST-000002"


def test_configure_refuses_a_placeholder_its_pattern_matches(configured) -> None:
    with pytest.raises(ValueError, match="placeholder"):
        configured(extra_patterns=[(r"<\w+>", "<redacted>")])


def test_environment_configures_workers() -> None:
    code = (
        "from taskexec.scrub import scrub_value; "
        "print(scrub_value({'pin': '1', 'job_id': '123e4567-e89b-12d3-a456-426614174000'}))"
    )
    env = {
        **os.environ,
        "TASKEXEC_SCRUB_SENSITIVE_KEYS": "pin, other",
        "TASKEXEC_SCRUB_ALLOW_KEYS": "job_id",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == (
        "{'pin': '<secret>', 'job_id': '123e4567-e89b-12d3-a456-426614174000'}"
    )


def test_placeholders_keep_error_groups() -> None:
    """Messages that differ only in a secret normalise alike, so they share a stack hash."""
    a = scrub_text("auth failed for sk-proj-AAAAbbbbCCCC0123456789dddd at +44 20 7946 0958")
    b = scrub_text("auth failed for sk-proj-ZZZZyyyyXXXX9876543210wwww at +1 415 555 0132")
    assert a == b == "auth failed for <openai-key> at <phone>"
    assert normalize_message(a) == normalize_message(b)
    ta = stack_hash_from_text("ValueError", f"ValueError: {a}", a)
    tb = stack_hash_from_text("ValueError", f"ValueError: {b}", b)
    assert ta == tb


def test_detectors_are_documented() -> None:
    """Every placeholder the module can write is in its table (docs/data-model.md copies it)."""
    placeholders = {p for _, p, _ in scrub.DETECTORS}
    assert {"<jwt>", "<aws-key>", "<card>", "<bearer-token>", "<secret>", "<iban>"} <= placeholders
