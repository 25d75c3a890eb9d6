"""PII scrubbing: planted PII never survives, ids/digests/timestamps are kept byte for byte."""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from taskexec.scrub import scrub_text, scrub_value

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


@given(noise, emails(), noise)
def test_planted_email_is_replaced(prefix: str, email: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, email, suffix))
    assert out is not None and email not in out and "<email>" in out


@given(noise, ipv4s, noise)
def test_planted_ipv4_is_replaced(prefix: str, ip: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, ip, suffix))
    assert out is not None and ip not in out and "<ip>" in out


@given(noise, ipv6s(), noise)
@example("", "::1", "")
@example("at", "fe80::1%eth0", "x")
@example("a", "::ffff:10.0.0.1", "b")
def test_planted_ipv6_is_replaced(prefix: str, ip: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, ip, suffix))
    assert out is not None and ip not in out and "<ip>" in out


@given(noise, uuids, noise)
def test_planted_uuid_is_replaced(prefix: str, value: str, suffix: str) -> None:
    out = scrub_text(_plant(prefix, value, suffix))
    assert out is not None and value not in out and "<uuid>" in out


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
    zulu = dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for value in (trace, span, digest, zulu, dt.isoformat(), dt.strftime("%H:%M:%S")):
        assert scrub_text(value) is value
    line = f"trace_id={trace} span_id={span} sha256:{digest} at {zulu} ({dt.isoformat()}) v1.2.3"
    assert scrub_text(line) is line


def test_secrets_token_ids_are_kept() -> None:
    for _ in range(500):
        line = f"{secrets.token_hex(16)}-{secrets.token_hex(8)} {secrets.token_hex(32)}"
        assert scrub_text(line) == line


pii_soup = st.lists(
    emails() | ipv4s | ipv6s() | uuids | noise | st.sampled_from([":", "::", ".", "-", "@", " "]),
    max_size=12,
).map("".join)


@given(st.text() | pii_soup)
@example("1:2:3:4:5:6::1.2.3.4")
@example("user@[10.0.0.1]:25 x@y.io.")
def test_idempotent(text: str) -> None:
    once = scrub_text(text)
    assert scrub_text(once) == once


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
        "a@b.com": ["<email>", ["<ip>", 3, None], {"deep": "id <uuid>"}],
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
