"""Secrets never reach the file: Hypothesis plants secrets of every kind in every text field and
sends them through every way in (live recording, the spool, backfill, OTLP import, live
OpenTelemetry spans), then reads the raw bytes of the database, its ``-wal``, the FTS index's
shadow tables and terms, the spool files and the exported spans, and finds none of them.

Identifier fields (task slug and id, error type, stack hash, attribute keys, file paths,
retrieval sources, parents, causes) get the kinds that identifiers lose (secrets, e-mails, IPs);
numbers (cards, phones, SSNs, IBANs) go into the free-text fields, which lose everything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import string
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskexec.cli import cli
from taskexec.db import Store
from taskexec.db.writer import replay
from taskexec.ingest.otlp import encode_attributes
from taskexec.recorder import Recorder
from taskexec.scrub import scrub_identifier, scrub_text

ALNUM = string.ascii_letters + string.digits
# Characters a generated password may hold: no quotes, backslashes, brackets or the separators
# that end a bare value (& , ; and spaces), which would make the planted text ambiguous.
PASSWORD_CHARS = ALNUM + "!#$%*+-./:=?^_~"
NOISE = st.lists(
    st.sampled_from(
        [
            "the",
            "nightly",
            "sync",
            "failed",
            "while",
            "talking",
            "to",
            "upstream",
            "retry",
            "later",
            "ok",
            "done",
            "Error:",
            "value",
            "for",
            "queue",
            "worker",
            "status",
            "at",
            "with",
            "from",
        ]
    ),
    max_size=4,
).map(" ".join)


@dataclass(frozen=True)
class Secret:
    """Planted text and the parts of it that must not survive anywhere."""

    kind: str
    text: str
    cores: tuple[str, ...]


# -- the kinds -----------------------------------------------------------------------------------


def _token(draw: st.DrawFn, size: int, alphabet: str = ALNUM) -> str:
    """``size`` random characters of ``alphabet``, with a letter first and a digit last (so a
    token is never a word). A few drawn characters are stretched with SHA-256, which keeps the
    examples small for Hypothesis while every character still varies."""
    seed = draw(st.text(alphabet, min_size=2, max_size=6))
    stretched = hashlib.sha256(seed.encode()).digest() * (size // 32 + 1)
    body = (seed + "".join(alphabet[b % len(alphabet)] for b in stretched))[: size - 2]
    return draw(st.sampled_from("QxZkW")) + body + draw(st.sampled_from("73958"))


def _digits(draw: st.DrawFn, n: int) -> str:
    return draw(st.text(string.digits, min_size=n, max_size=n))


@st.composite
def bearer(draw: st.DrawFn) -> Secret:
    tok = _token(draw, draw(st.integers(20, 48)), ALNUM + "-._~+/")
    form = draw(st.sampled_from(["Authorization: Bearer {}", "bearer {}", "BEARER {}"]))
    return Secret("bearer", form.format(tok), (tok,))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@st.composite
def jwt(draw: st.DrawFn) -> Secret:
    header = _b64(
        json.dumps({"alg": draw(st.sampled_from(["HS256", "RS256"])), "typ": "JWT"}).encode()
    )
    claims = {"sub": _token(draw, 12), "exp": draw(st.integers(10**9, 2 * 10**9))}
    payload = _b64(json.dumps(claims).encode())
    signature = _b64(hashlib.sha256(draw(st.binary(min_size=1, max_size=8))).digest())
    token = f"{header}.{payload}.{signature}"
    return Secret("jwt", token, (token, payload))


@st.composite
def api_key(draw: st.DrawFn) -> Secret:
    kind = draw(
        st.sampled_from(
            [
                "openai",
                "openai-proj",
                "anthropic",
                "github",
                "github-pat",
                "stripe",
                "stripe-rk",
                "stripe-webhook",
                "slack",
                "slack-app",
                "google",
                "google-secret",
                "google-token",
            ]
        )
    )
    key = {
        "openai": lambda: "sk-" + _token(draw, 48),
        "openai-proj": lambda: "sk-proj-" + _token(draw, 56, ALNUM + "_-"),
        "anthropic": lambda: "sk-ant-api03-" + _token(draw, 86, ALNUM + "_-"),
        "github": lambda: "ghp_" + _token(draw, 36),
        "github-pat": lambda: f"github_pat_{_token(draw, 22)}_{_token(draw, 59)}",
        "stripe": lambda: "sk_live_" + _token(draw, draw(st.integers(24, 99))),
        "stripe-rk": lambda: "rk_test_" + _token(draw, 24),
        "stripe-webhook": lambda: "whsec_" + _token(draw, 32),
        "slack": lambda: f"xoxb-{_digits(draw, 12)}-{_token(draw, 24)}",
        "slack-app": lambda: f"xapp-1-A{_digits(draw, 10)}-{_token(draw, 30)}",
        "google": lambda: "AIza" + _token(draw, 35, ALNUM + "_-"),
        "google-secret": lambda: "GOCSPX-" + _token(draw, 28, ALNUM + "_-"),
        "google-token": lambda: "ya29." + _token(draw, 60, ALNUM + "_-"),
    }[kind]()
    form = draw(st.sampled_from(["{}", "using {} now", "({})", "'{}'"]))
    return Secret(f"api-key:{kind}", form.format(key), (key,))


@st.composite
def aws_access_key(draw: st.DrawFn) -> Secret:
    key = draw(st.sampled_from(["AKIA", "ASIA"])) + draw(
        st.text(string.ascii_uppercase + "234567", min_size=16, max_size=16)
    )
    return Secret("aws-access-key", f"credentials for {key} expired", (key,))


@st.composite
def aws_secret_key(draw: st.DrawFn) -> Secret:
    key = _token(draw, 40, ALNUM + "/+")
    form = draw(
        st.sampled_from(
            [
                "aws_secret_access_key = {}",
                "AWS_SECRET_ACCESS_KEY={}",
                '"SecretAccessKey": "{}"',
                "secret_key: {}",
                "{{'aws_secret_access_key': '{}'}}",
            ]
        )
    )
    return Secret("aws-secret-key", form.format(key), (key,))


@st.composite
def named_value(draw: st.DrawFn) -> Secret:
    """``password=...`` and friends in query strings, headers, JSON, reprs and log lines."""
    value = _token(draw, draw(st.integers(8, 24)), PASSWORD_CHARS)
    name = draw(
        st.sampled_from(
            [
                "password",
                "passwd",
                "db_password",
                "PASSWORD",
                "api_key",
                "apiKey",
                "X-Api-Key",
                "access_token",
                "refresh_token",
                "client_secret",
                "secret",
                "token",
                "auth_token",
                "sessionid",
                "credentials",
                "private_key",
                "dsn",
            ]
        )
    )
    form = draw(
        st.sampled_from(
            [
                "{n}={v}",
                "?user=bob&{n}={v}&page=2",
                '{{"{n}": "{v}"}}',
                "{n}: {v}",
                "{{'{n}': '{v}'}}",
                "{n} = {v} user=bob",
                '{{\\"{n}\\":\\"{v}\\"}}',
                "--{n}={v}",
            ]
        )
    )
    return Secret(f"named:{name}", form.format(n=name, v=value), (value,))


@st.composite
def strict_key(draw: st.DrawFn) -> Secret:
    value = _token(draw, draw(st.integers(20, 40)), ALNUM + "-_.")
    name = draw(st.sampled_from(["key", "sig", "X-Amz-Signature", "signature"]))
    return Secret("named-strict", f"GET /x?{name}={value}&a=1", (value,))


@st.composite
def cookie(draw: st.DrawFn) -> Secret:
    sid, csrf = _token(draw, 32), _token(draw, 24)
    return Secret("cookie", f"Cookie: sessionid={sid}; csrftoken={csrf}; theme=dark", (sid, csrf))


@st.composite
def url_credentials(draw: st.DrawFn) -> Secret:
    user = _token(draw, draw(st.integers(6, 12)))
    password = _token(draw, draw(st.integers(8, 20)), ALNUM + "!$%*+-.:=^_~")
    form = draw(
        st.sampled_from(
            [
                "https://{u}:{p}@example.com/path",
                "postgres://{u}:{p}@db.internal:5432/app",
                "postgresql+psycopg://{u}:{p}@10.0.0.7/app?sslmode=require",
                "mongodb+srv://{u}:{p}@cluster0.abcde.mongodb.net/db",
                "amqp://{u}:{p}@rabbit//",
                "redis://:{p}@cache:6379/0",
            ]
        )
    )
    cores = (password,) if "{u}" not in form else (user, password)
    return Secret("url-credentials", form.format(u=user, p=password), cores)


@st.composite
def private_key(draw: st.DrawFn) -> Secret:
    label = draw(
        st.sampled_from(
            [
                "RSA PRIVATE KEY",
                "EC PRIVATE KEY",
                "OPENSSH PRIVATE KEY",
                "PRIVATE KEY",
                "ENCRYPTED PRIVATE KEY",
            ]
        )
    )
    seed = draw(st.binary(min_size=1, max_size=8))
    lines = [
        base64.b64encode(hashlib.sha384(seed + bytes([i])).digest()).decode()
        for i in range(draw(st.integers(2, 5)))
    ]
    lines[0] = "MII" + lines[0][3:]
    block = f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    return Secret("private-key", block, tuple(line[:40] for line in lines))


@st.composite
def email(draw: st.DrawFn) -> Secret:
    local = _token(draw, draw(st.integers(4, 12)), ALNUM + "._%+-")
    domain = draw(st.sampled_from(["example.com", "corp.example.co.uk", "mail.io"]))
    address = f"{local}@{domain}"
    return Secret("email", address, (address,))


@st.composite
def ip_address(draw: st.DrawFn) -> Secret:
    if draw(st.booleans()):
        ip = ".".join(str(draw(st.integers(10, 254))) for _ in range(4))
    else:
        groups = [f"{draw(st.integers(0x1000, 0xFFFF)):x}" for _ in range(8)]
        ip = ":".join(groups) if draw(st.booleans()) else f"{groups[0]}:{groups[1]}::{groups[7]}"
    return Secret("ip", f"peer {ip} reset", (ip,))


def _luhn_complete(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits + "0")):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return digits + str((10 - total % 10) % 10)


@st.composite
def card(draw: st.DrawFn) -> Secret:
    prefix, length = draw(
        st.sampled_from(
            [
                ("4", 16),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("34", 15),
                ("37", 15),
                ("6011", 16),
                ("4", 13),
            ]
        )
    )
    body = prefix + _digits(draw, length - len(prefix) - 1)
    number = _luhn_complete(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    if sep and length == 16:
        number = sep.join(number[i : i + 4] for i in range(0, 16, 4))
    elif sep and length == 15:
        number = sep.join([number[:4], number[4:10], number[10:]])
    return Secret("card", f"card {number} declined", (number,))


@st.composite
def phone(draw: st.DrawFn) -> Secret:
    def digits(n: int) -> str:
        return _digits(draw, n)

    area, exchange = draw(st.integers(201, 989)), draw(st.integers(200, 999))
    number = draw(
        st.sampled_from(
            [
                f"+44 20 7946 {digits(4)}",
                f"+1 {area} {exchange} {digits(4)}",
                f"+1 ({area}) {exchange}-{digits(4)}",
                f"+49 30 {digits(8)}",
                f"+4915{digits(9)}",
                f"+33 1 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
                f"({area}) {exchange}-{digits(4)}",
                f"{area}-{exchange}-{digits(4)}",
                f"{area}.{exchange}.{digits(4)}",
                f"020 7946 {digits(4)}",
                f"01 {digits(2)} {digits(2)} {digits(2)} {digits(2)}",
                f"030 {digits(8)}",
            ]
        )
    )
    return Secret("phone", f"call {number} back", (number,))


@st.composite
def ssn(draw: st.DrawFn) -> Secret:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    number = f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"
    return Secret("ssn", f"applicant {number} rejected", (number,))


def _iban(country: str, bban: str) -> str:
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


@st.composite
def iban(draw: st.DrawFn) -> Secret:
    def digits(n: int) -> str:
        return _digits(draw, n)

    letters = draw(st.text(string.ascii_uppercase, min_size=4, max_size=4))
    country, bban = draw(
        st.sampled_from(
            [
                ("DE", digits(18)),
                ("GB", letters + digits(14)),
                ("FR", digits(23)),
                ("NL", letters + digits(10)),
            ]
        )
    )
    compact = _iban(country, bban)
    spaced = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    number = draw(st.sampled_from([compact, spaced]))
    return Secret("iban", f"payout to {number} held", (number, compact))


#: Every kind, and whether identifiers lose it too (numbers stay in ids and paths).
KINDS: dict[str, tuple[Callable[[], st.SearchStrategy[Secret]], bool]] = {
    "bearer": (bearer, True),
    "jwt": (jwt, True),
    "api-key": (api_key, True),
    "aws-access-key": (aws_access_key, True),
    "aws-secret-key": (aws_secret_key, True),
    "named": (named_value, True),
    "named-strict": (strict_key, False),
    "cookie": (cookie, True),
    "url-credentials": (url_credentials, True),
    "private-key": (private_key, True),
    "email": (email, True),
    "ip": (ip_address, True),
    "card": (card, False),
    "phone": (phone, False),
    "ssn": (ssn, False),
    "iban": (iban, False),
}
ANY_KIND = st.one_of(*(make() for make, _ in KINDS.values()))
IDENTIFIER_KIND = st.one_of(*(make() for make, ident in KINDS.values() if ident))


def planted(kind: st.SearchStrategy[Secret]) -> st.SearchStrategy[tuple[str, Secret]]:
    """A secret with noise words around it."""
    return st.tuples(NOISE, kind, NOISE).map(lambda t: (f"{t[0]} {t[1].text} {t[2]}".strip(), t[1]))


# -- a record with a secret in every field -------------------------------------------------------

TEXT_FIELDS = (
    "error_message",
    "stack_trace",
    "content",
    "host",
    "attr_value",
    "attr_nested",
    "attr_list",
)
IDENT_FIELDS = (
    "task_slug",
    "task_id",
    "error_type",
    "stack_hash",
    "source",
    "file",
    "parent",
    "cause",
    "attr_key",
)


@dataclass
class Plan:
    """One record's fields, each with a planted secret, and every core planted."""

    fields: dict[str, str]
    cores: list[str]
    sensitive: dict[str, str]  # values under sensitive keys (replaced whole)

    def attributes(self) -> dict[str, Any]:
        f = self.fields
        return {
            "queue": f["attr_value"],
            f["attr_key"]: "ok",
            "request": {"body": f["attr_nested"]},
            "log_lines": ["start", f["attr_list"]],
            **self.sensitive,
        }


def _sensitive(draw: st.DrawFn) -> dict[str, str]:
    """Values under sensitive keys: shapeless, so only their key gives them away."""
    return {
        key: _token(draw, 16, PASSWORD_CHARS)
        for key in ("password", "api_key", "Authorization", "refreshToken", "DATABASE_DSN")
    }


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """A record with a secret of a random kind in each field."""
    fields: dict[str, str] = {}
    cores: list[str] = []
    for names, kind in ((TEXT_FIELDS, ANY_KIND), (IDENT_FIELDS, IDENTIFIER_KIND)):
        for name in names:
            fields[name], secret = draw(planted(kind))
            cores += secret.cores
    sensitive = _sensitive(draw)
    return Plan(fields, cores + list(sensitive.values()), sensitive)


@st.composite
def one_kind_plans(draw: st.DrawFn, kind: str) -> Plan:
    """A record with one secret of ``kind`` in every field it belongs to (identifier fields get
    an e-mail address when identifiers keep that kind)."""
    make, in_identifiers = KINDS[kind]
    secret = draw(make())
    ident = secret if in_identifiers else draw(email())
    fields = {name: f"{name} {secret.text} end" for name in TEXT_FIELDS}
    fields |= {name: f"{name} {ident.text} end" for name in IDENT_FIELDS}
    sensitive = _sensitive(draw)
    cores = [*secret.cores, *ident.cores, *sensitive.values()]
    return Plan(fields, cores, sensitive)


# -- reading everything back ---------------------------------------------------------------------


def fts_terms(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, task_executions_fts, 'row')"
        )
        return {row[0] for row in conn.execute("SELECT term FROM temp.vocab")}
    finally:
        conn.close()


def shadow_bytes(db: Path) -> bytes:
    """Every row of the FTS shadow tables and every stored value, as bytes."""
    conn = sqlite3.connect(db)
    try:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%'"
            )
        ]
        assert any(t.startswith("task_executions_fts_") for t in tables), tables
        out = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        out.append(value)
                    elif value is not None:
                        out.append(str(value).encode("utf-8", "surrogatepass"))
        return b"\n".join(out)
    finally:
        conn.close()


def raw_files(*paths: Path) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


def assert_no_core(blob: bytes, cores: Iterable[str], where: str) -> None:
    for core in cores:
        assert core.encode() not in blob, f"{core!r} found in {where}"


def _tokens(core: str) -> list[str]:
    """FTS5 unicode61 tokens of a core that are long enough to be distinctive."""
    parts = "".join(c.lower() if c.isalnum() else " " for c in core).split()
    return [p for p in parts if len(p) >= 10]


def check_database(db: Path, cores: list[str]) -> None:
    """The database file, its -wal, every table (FTS shadow tables included), the FTS terms."""
    assert_no_core(raw_files(db, Path(f"{db}-wal")), cores, f"{db.name} or its -wal")
    assert_no_core(shadow_bytes(db), cores, "a table of the database")
    terms = fts_terms(db)
    assert terms, "the full-text index is empty"
    stems = {t[:10] for t in terms if len(t) >= 10}
    for core in cores:
        for token in _tokens(core):
            assert token[:10] not in stems, f"{token!r} of {core!r} is a full-text term"


# -- the ways in ---------------------------------------------------------------------------------

T0 = 1_762_322_400  # 2025-11-05T06:00:00Z


class PlantedError(Exception):
    """Raised by a tracked body; its message carries a secret."""


def record_live(rec: Recorder, plan: Plan) -> None:
    """Two attempts: one finished with explicit error text, one ended by a live exception."""
    f = plan.fields
    options: dict[str, Any] = {
        "task_id": f["task_id"],
        "attributes": plan.attributes(),
        "parents": [f["parent"]],
        "causes": [{"span": f["cause"]}],
        "content": f["content"],
    }
    run = rec.start(f["task_slug"], **options)
    run.retrieved(2, [f["source"]])
    run.wrote(f["file"])
    run.set(extra=f["attr_value"])
    run.finish(
        status="failed",
        error_type=f["error_type"],
        error_message=f["error_message"],
        stack_trace=f["stack_trace"],
    )
    with pytest.raises(PlantedError), rec.track(f["task_slug"], **options) as live:
        live.wrote(f["file"])
        raise PlantedError(f["error_message"])


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


def cores_of(plans: list[Plan]) -> list[str]:
    return [core for plan in plans for core in plan.cores]


def live_path(plans: list[Plan]) -> None:
    with scratch() as tmp:
        db = tmp / "t.db"
        for plan in plans:
            with Recorder(db, host=plan.fields["host"]) as rec:
                record_live(rec, plan)
                assert rec.flush(10)
                check_database(db, cores_of(plans))  # with the -wal as it is
        check_database(db, cores_of(plans))  # after the checkpoint at close


def spool_path(plans: list[Plan]) -> None:
    with scratch() as tmp:
        os.environ["TASKEXEC_SPOOL_DIR"] = str(tmp / "spool")
        try:
            db = tmp / "missing" / "t.db"
            for plan in plans:
                with Recorder(db, host=plan.fields["host"]) as rec:
                    record_live(rec, plan)
                    assert rec.flush(10)
                    assert rec.stats.spooled >= 2 and rec.stats.written == 0
            spooled = [p for p in (tmp / "spool").rglob("*") if p.is_file()]
            assert any(p.suffix == ".jsonl" for p in spooled), spooled
            assert_no_core(raw_files(*spooled), cores_of(plans), "the spool")
            db.parent.mkdir()
            with Store(db) as store:
                result = replay(store, str(db))
                assert result.rows == 2 * len(plans)
            check_database(db, cores_of(plans))
        finally:
            del os.environ["TASKEXEC_SPOOL_DIR"]


def result_file(plan: Plan, i: int) -> dict[str, Any]:
    f = plan.fields
    return {
        "task_id": f["task_id"],
        "task_name": f["task_slug"],
        "started_at": T0 + i * 60,
        "ended_at": T0 + i * 60 + 5,
        "error": {
            "type": f["error_type"],
            "message": f["error_message"],
            "traceback": f["stack_trace"],
        },
        "host": f["host"],
        "content": f["content"],
        "retrieval_sources": [f["source"]],
        "files_written": [f["file"]],
        "parents": [f["parent"]],
        "causes": [{"span": f["cause"]}],
        "attributes": plan.attributes(),
        "token": plan.sensitive["password"],  # an unknown top-level key: kept in attributes
        f["attr_key"]: f["attr_value"],
    }


def count(db: Path) -> int:
    with Store(db) as store:
        return store.count_executions()


def backfill_path(plans: list[Plan]) -> None:
    with scratch() as tmp:
        (tmp / "results").mkdir()
        for n, plan in enumerate(plans):
            for i in range(2):
                record = result_file(plan, 2 * n + i)
                (tmp / "results" / f"run-{n}-{i}.json").write_text(json.dumps(record))
        db = tmp / "t.db"
        out = CliRunner().invoke(cli, ["backfill", str(tmp / "results"), "--db", str(db)])
        assert out.exit_code == 0, out.output
        assert count(db) == 2 * len(plans)
        check_database(db, cores_of(plans))


def otlp_span(plan: Plan, i: int) -> dict[str, Any]:
    f = plan.fields
    start = (T0 + i * 60) * 10**9
    attrs = {
        "taskexec.task_slug": f["task_slug"],
        "taskexec.task_id": f["task_id"],
        "taskexec.content": f["content"],
        "taskexec.stack_hash": f["stack_hash"],
        "taskexec.retrieval_sources": [f["source"]],
        "taskexec.files_written": [f["file"]],
        "taskexec.parents": json.dumps([f["parent"]]),
        "taskexec.causes": json.dumps([{"span": f["cause"]}]),
        "taskexec.attributes": json.dumps(plan.attributes()),
        "host.name": f["host"],
        f["attr_key"]: f["attr_value"],  # a foreign attribute: kept in attributes
        "api_key": plan.sensitive["api_key"],
    }
    exception = {
        "exception.type": f["error_type"],
        "exception.message": f["error_message"],
        "exception.stacktrace": f["stack_trace"],
    }
    return {
        "traceId": f"{i + 1:032x}",
        "spanId": f"{i + 1:016x}",
        "name": f["task_slug"],
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 2 * 10**9),
        "attributes": encode_attributes(attrs),
        "events": [
            {
                "name": "exception",
                "timeUnixNano": str(start),
                "attributes": encode_attributes(exception),
            }
        ],
        "status": {"code": 2, "message": f["error_message"]},
    }


def otlp_path(plans: list[Plan]) -> None:
    with scratch() as tmp:
        spans = [otlp_span(plan, 2 * n + i) for n, plan in enumerate(plans) for i in range(2)]
        resource = {"attributes": encode_attributes({"service.name": "jobs"})}
        doc = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
        path = tmp / "spans.json"
        path.write_text(json.dumps(doc))
        db = tmp / "t.db"
        out = CliRunner().invoke(cli, ["import-otlp", str(path), "--db", str(db)])
        assert out.exit_code == 0, out.output
        assert count(db) == 2 * len(plans)
        check_database(db, cores_of(plans))


def _span_strings(span: Any) -> Iterator[str]:
    """Every string an exported span carries: name, status, attributes of it, its events and
    its links (keys and values)."""
    yield span.name
    yield span.status.description or ""
    for attributes in (
        span.attributes,
        *(e.attributes for e in span.events),
        *(link.attributes for link in span.links),
    ):
        for key, value in (attributes or {}).items():
            yield key
            yield from (value if isinstance(value, tuple | list) else [value])
    yield from (e.name for e in span.events)


def spans_path(plans: list[Plan]) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.util._once import Once

    saved = trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = None, Once()
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    try:
        with scratch() as tmp:
            db = tmp / "t.db"
            for plan in plans:
                with Recorder(db, host=plan.fields["host"]) as rec:
                    record_live(rec, plan)
                    assert rec.flush(10)
            exported = memory.get_finished_spans()
            assert len(exported) == 2 * len(plans)
            blob = "\n".join(str(x) for span in exported for x in _span_strings(span)).encode()
            assert_no_core(blob, cores_of(plans), "an exported span")
            check_database(db, cores_of(plans))
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE = saved


PATHS: dict[str, Callable[[list[Plan]], None]] = {
    "live": live_path,
    "spool": spool_path,
    "backfill": backfill_path,
    "otlp": otlp_path,
    "live-spans": spans_path,
}

# -- the tests -----------------------------------------------------------------------------------


SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=2, deadline=None, suppress_health_check=SLOW)
@given(st.tuples(*(one_kind_plans(kind) for kind in KINDS)).map(list))
def test_every_kind_in_every_field_never_reaches_the_file(path: str, plans: list[Plan]) -> None:
    """One record per kind, that kind in every field it belongs to, all in one database."""
    PATHS[path](plans)


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=4, deadline=None, suppress_health_check=SLOW)
@given(st.lists(plans(), min_size=1, max_size=3))
def test_planted_secrets_never_reach_the_file(path: str, plans: list[Plan]) -> None:
    """Records with a random kind in each field."""
    PATHS[path](plans)


@settings(max_examples=300, deadline=None)
@given(planted(ANY_KIND))
def test_text_loses_every_kind(item: tuple[str, Secret]) -> None:
    text, secret = item
    out = scrub_text(text)
    assert out is not None
    for core in secret.cores:
        assert core not in out, (secret.kind, text, out)
    assert scrub_text(out) == out


@settings(max_examples=200, deadline=None)
@given(planted(IDENTIFIER_KIND))
def test_identifiers_lose_secrets_emails_and_ips(item: tuple[str, Secret]) -> None:
    text, secret = item
    out = scrub_identifier(text)
    assert out is not None
    for core in secret.cores:
        assert core not in out, (secret.kind, text, out)
    assert scrub_identifier(out) == out
