"""Replace secrets and personal data in text with typed placeholders, before anything is stored.

Every record is encoded through ``db/rows.py``, which calls this module for each field:
``scrub_text`` for free text (messages, stack traces, summaries, attribute values),
``scrub_identifier`` for names and paths (task slug and id, attribute keys, file paths,
retrieval sources, parents and causes) and ``scrub_value`` for JSON values. What is found:

- secrets (text and identifiers): private key blocks, credentials in URLs and connection
  strings, JWTs, ``Bearer`` tokens, AWS, GitHub, Stripe, OpenAI, Anthropic, Slack and Google
  key formats, and the value after a sensitive name (``password=``, ``"api_key": "..."``,
  ``X-Api-Key:``, ``Cookie:``...);
- e-mail and IP addresses (text and identifiers);
- UUIDs, IBANs (mod-97 checked), card numbers (Luhn checked), US SSNs and phone numbers
  (international and common national formats): free text only, so identifiers and paths keep
  their structure.

Values under a sensitive key (``SENSITIVE_KEYS``, suffix match on the normalised key) are
replaced whole. ``configure`` adds patterns and sensitive keys and allow-lists id-like keys
(their values are scrubbed as identifiers: UUIDs and numbers survive); the environment variables
``TASKEXEC_SCRUB_SENSITIVE_KEYS`` and ``TASKEXEC_SCRUB_ALLOW_KEYS`` (comma lists) do the same at
import. Placeholders are fixed (``<aws-key>``, ``<jwt>``, ``<card>``...) so messages still group,
and scrubbing is idempotent: ``scrub_text(scrub_text(x)) == scrub_text(x)``. Trace/span ids, hex
digests, timestamps, times, versions and paths are kept.

It runs on every field of every record, on the task's thread and in bulk loads, so it is built
for speed: one-character ``in`` checks (a memchr), then longer literals and literal-led hint
regexes decide which detectors can match at all, each pattern is laid out for the engine's fast
scan (and compiled the first time it is needed), names are classified once, clean short strings
are remembered (a set lookup the next time), and an unchanged string is returned as the same
object. timeit (CPython 3.11, shared 2-vCPU machine): one pass over a clean ~80-character string
0.8 µs (prose) to 2.5-4.4 µs (timestamps, ``key=value`` pairs), a clean 288-character traceback
5.4 µs, any short string seen before 0.09 µs; ~80 characters holding a secret 2.4-17 µs (a second
pass confirms the result); a demo record through ``rows.encode_record`` ~19 µs, 1.4 µs more than
with the PII-only scrubber this replaced. ``docs/benchmarks.md`` has the table.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: Comma list of extra sensitive key names, read at import (``configure`` replaces it).
SENSITIVE_KEYS_ENV = "TASKEXEC_SCRUB_SENSITIVE_KEYS"
#: Comma list of attribute keys whose values are kept as identifiers (ids survive).
ALLOW_KEYS_ENV = "TASKEXEC_SCRUB_ALLOW_KEYS"

#: Key names whose values are secret. A key matches when its normalised form (lower case, only
#: letters and digits) ends with one of these normalised: ``db_password``, ``X-Api-Key``,
#: ``refreshToken`` and ``AWS_SECRET_ACCESS_KEY`` all match. The same names mark a secret
#: after ``=`` or ``:`` in text.
SENSITIVE_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "access_key",
    "secret_key",
    "private_key",
    "signing_key",
    "encryption_key",
    "authorization",
    "auth",
    "cookie",
    "session",
    "session_id",
    "credential",
    "credentials",
    "dsn",
    "connection_string",
    "jwt",
    "otp",
    "cvv",
    "cvc",
    "card_number",
)
#: Names that mark a secret in text only when the value looks like one (16+ characters of
#: ``[A-Za-z0-9._~+/=%-]`` with a letter and a digit): ``key=``, ``sig=``, ``X-Amz-Signature=``;
#: so ``sorted(x, key=len)`` stays as it is. Any name ending in ``key`` counts.
STRICT_NAMES: tuple[str, ...] = ("key", "sig", "signature")


def _lazy(pattern: str, flags: int = 0) -> Callable[[], re.Pattern[str]]:
    """A pattern compiled the first time it is needed: a process rarely meets most detectors,
    and compiling them all at import cost more than the import of the rest of this module."""

    @functools.cache
    def compiled() -> re.Pattern[str]:
        return re.compile(pattern, flags)

    return compiled


SECRET = "<secret>"  # a value marked by its name
_PLACEHOLDER_RE = re.compile(r"<[a-z][a-z0-9-]*>")

# -- e-mail, IP, UUID ----------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"
_V4 = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
_X = "[0-9A-Fa-f]"
_H = f"{_X}{{1,4}}+"  # possessive: a group is always followed by ":" or the end, never by hex
_V6_TAIL = rf"(?:(?:{_H}:)*(?:{_V4}|{_H}))?"  # what may follow "::"

# Each pattern starts with a plain character class, then a cheap lookahead that rejects most
# positions, then the boundary lookbehind: that order lets the regex engine use its charset scan
# (a leading lookbehind, or one alternation of all patterns, made the search ~3-5x slower).
_AT_RE = _lazy(rf"@(?:\[[^\]\s]{{1,64}}\]|(?:{_V4}|(?:[A-Za-z0-9-]+\.)+[A-Za-z]{{2,}})(?![\w-]))")
_UUID_RE = _lazy(
    rf"{_X}(?={_X}{{7}}-)(?<!{_X}.){_X}{{7}}-{_X}{{4}}-{_X}{{4}}-{_X}{{4}}-{_X}{{12}}(?!{_X})"
)
_IP6_RE = _lazy(
    rf"[0-9A-Fa-f:](?={_X}{{0,3}}+:)"
    r"(?:(?<![\w:].)|(?<=[G-Zg-z_]:.))"  # not inside a word or colon run ("ip:" before is ok)
    rf"(?:(?<=:):{_V6_TAIL}"  # starts with "::"
    rf"|(?<!:){_X}{{0,3}}+(?:(?::{_H}){{7}}|(?::{_H}){{5}}:{_V4}|(?::{_H})*+::{_V6_TAIL}))"
    r"(?:%[0-9A-Za-z_.-]+)?"  # zone id, as in fe80::1%eth0
    r"(?![0-9A-Za-z_]|:[0-9A-Za-z:]|\.[0-9])"
)
_IP4_RE = _lazy(
    r"[0-9](?=[0-9]{0,2}+\.[0-9])(?<![0-9A-Za-z.].)"
    r"[0-9]{0,2}+(?:\.[0-9]{1,3}+){3}(?![0-9A-Za-z]|\.[0-9])"
)
# Hints start with a literal, which the engine finds with a fast search; the full pattern only
# runs when its hint matches.
_UUID_HINT = re.compile(rf"-{_X}{{4}}-{_X}{{4}}-")
_IP6_HINT = re.compile(rf"::(?:(?={_X})|(?<={_X}::))")
_IP4_HINT = re.compile(r"\.[0-9]{1,3}\.[0-9]")


def _scrub_emails(s: str) -> str:
    """Find ``@domain`` with a fast literal search, then walk back over the local part."""
    parts: list[str] = []
    last = 0
    for m in _AT_RE().finditer(s):
        start = at = m.start()
        while start > last and (s[start - 1].isalnum() or s[start - 1] in "._%+-"):
            start -= 1
        if start < at:
            parts += (s[last:start], "<email>")
            last = m.end()
    if not parts:
        return s
    parts.append(s[last:])
    return "".join(parts)


def _ip6(m: re.Match[str]) -> str:
    """``<ip>``, unless it is a short ``a::b`` look-alike such as the slice ``x[1::2]``.

    A ``::`` form needs 3+ groups, a 4-digit group, an embedded IPv4, or to be ``::1``. The group
    count is not checked: a malformed address-like run is scrubbed too (safer, and idempotent).
    """
    text = m.group()
    addr = text.split("%", 1)[0]
    if "::" not in addr or addr == "::1" or "." in addr:
        return "<ip>"
    groups = [g for g in addr.split(":") if g]
    return "<ip>" if len(groups) >= 3 or any(len(g) == 4 for g in groups) else text


def _ip4(m: re.Match[str]) -> str:
    text = m.group()
    return "<ip>" if all(int(o) <= 255 for o in text.split(".")) else text


# -- secrets with a recognisable shape -----------------------------------------------------------

_PRIVATE_KEY_RE = _lazy(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:,.-]*)",
    re.DOTALL,
)
# scheme://user:password@ or scheme://user@ (a password may hold "@": the last one counts).
_URL_CREDENTIALS_RE = _lazy(r"://(?:[^\s/?#@<>]*:[^\s/?#]*|[^\s/?#@:<>]+)@")
_JWT_RE = _lazy(
    r"eyJ(?<![A-Za-z0-9]eyJ)[A-Za-z0-9_-]{6,}+\.[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]*+"
    r"(?:\.[A-Za-z0-9_-]++\.[A-Za-z0-9_-]++)?"  # the two more parts of an encrypted JWT (JWE)
)


# Each starts with its literal prefix (the engine finds it with a fast search), then checks the
# character before the prefix with a fixed-width lookbehind: not inside a word (after "-" or
# "_" is fine: ``task-ghp_...``).
def _nb(width: int) -> str:
    return f"(?<![A-Za-z0-9].{{{width}}})"


_AWS_KEY_RE = _lazy(rf"A(?:KIA|SIA|BIA|CCA){_nb(4)}[A-Z0-9]{{16}}(?![A-Za-z0-9])")
_GITHUB_RE = _lazy(
    rf"g(?:h[pousr]_{_nb(4)}[A-Za-z0-9]{{30,}}|ithub_pat_{_nb(11)}[A-Za-z0-9_]{{22,}})"
    r"(?![A-Za-z0-9_])"
)
_STRIPE_RE = _lazy(r"(?<![A-Za-z0-9])[sr]k_(?:live|test)_[A-Za-z0-9]{10,}")
_STRIPE_WEBHOOK_RE = _lazy(rf"whsec_{_nb(6)}[A-Za-z0-9+/=]{{16,}}")
_ANTHROPIC_RE = _lazy(rf"sk-ant-{_nb(7)}[A-Za-z0-9_-]{{20,}}")
# 20+ characters with a digit, so a word such as ``sk-learn-compatible-wrappers`` is not a key.
_OPENAI_RE = _lazy(rf"sk-{_nb(3)}(?=[A-Za-z0-9_-]{{20}})(?=[A-Za-z_-]*[0-9])[A-Za-z0-9_-]+")
_SLACK_RE = _lazy(rf"x(?:ox[abposre]-{_nb(5)}|app-[0-9]-{_nb(7)})[A-Za-z0-9-]{{10,}}")
_SLACK_WEBHOOK_RE = _lazy(r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]+")
_GOOGLE_KEY_RE = _lazy(rf"(?:AIza{_nb(4)}[0-9A-Za-z_-]{{30,}}|GOCSPX-{_nb(7)}[0-9A-Za-z_-]{{20,}})")
_GOOGLE_TOKEN_RE = _lazy(rf"ya29\.{_nb(5)}[0-9A-Za-z_-]{{20,}}")
_BEARER_TAIL = r"(\s+|%20|\+)(?!<)[A-Za-z0-9._~+/-]{8,}=*"  # the token after "Bearer"
_BEARER_RE = _lazy(rf"earer(?<=[Bb]earer)(?<![A-Za-z0-9].{{6}}){_BEARER_TAIL}")
_BEARER_UPPER_RE = _lazy(rf"EARER(?<=BEARER)(?<![A-Za-z0-9].{{6}}){_BEARER_TAIL}")


def _bearer(m: re.Match[str]) -> str:
    return f"earer{m.group(1)}<bearer-token>"


def _bearer_upper(m: re.Match[str]) -> str:
    return f"EARER{m.group(1)}<bearer-token>"


# -- a secret after its name: password=..., "api_key": "...", X-Api-Key: ... --------------------

_SCHEME = (
    r"(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN|[Dd]igest|[Bb]ot|[Nn]egotiate|NTLM"
    r"|AWS4-HMAC-SHA256|[Aa]pi[Kk]ey|SSWS)[ \t]+"
)
_VALUE_RE = _lazy(
    r"[ \t]*(?:"
    r"(?P<q>\\*[\"'])(?P<qv>(?:\\.|[^\\\n])*?)(?P=q)"  # quoted, up to the same quote
    rf"|(?P<scheme>{_SCHEME})?(?![{{\[(])"
    r"(?P<v>(?:[^\s&,;\"'\\]++|\\(?![\"']))++)"  # bare: up to a space, & , ; or quote
    r"|(?P<open>\\*[\"'])(?P<ov>[^\s\"'\\]+)"  # a quote that is never closed
    r")"
)
_SCHEME_RE = _lazy(_SCHEME)
_LINE_RE = _lazy(r"[ \t]*([^\r\n]*)")
_STRICT_VALUE_RE = _lazy(r"(?=[^0-9]*[0-9])(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9._~+/=%-]{16,}")
_NOT_ALNUM_RE = re.compile(r"[^a-z0-9]+")

_OPENER = {")": "(", "]": "[", "}": "{"}
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_ANY, _STRICT, _COOKIE = 1, 2, 3  # what a name before "=" or ":" says about its value


def _norm(name: str) -> str:
    return _NOT_ALNUM_RE.sub("", name.lower())


def _gate_words(names: Iterable[str]) -> set[str]:
    """What the cheap gate looks for right before a separator: a one-word name itself, else
    its last two words joined by nothing, ``_``, ``-`` or ``.`` (matched case-insensitively)."""
    words: set[str] = set()
    for name in names:
        parts = [p for p in re.split(r"[^A-Za-z0-9]+", name.lower()) if p]
        if len(parts) == 1:
            words.add(parts[0])
        elif parts:
            words.update(sep.join(parts[-2:]) for sep in ("", "_", "-", "."))
    # "api_key" is already found by "key": drop words that end with another gate word
    return {w for w in words if not any(w != o and w.endswith(o) for o in words)}


def _suffixes(words: list[str], tail: str) -> str:
    """Lookbehinds that hold when the text before ``tail`` ends with one of ``words``: first one
    lookbehind over the words' last three characters (an alternation of plain literals, which
    the engine skips through on their first character), then the words themselves, so most
    names fail after one check."""
    by_width: dict[int, set[str]] = {}
    for w in words:
        by_width.setdefault(min(len(w), 3), set()).add(w[-3:])
    ends = "|".join(  # a lookbehind needs one width: words under three characters go apart
        f"(?<=(?:{'|'.join(map(re.escape, sorted(tails)))}){tail})"
        for _, tails in sorted(by_width.items(), reverse=True)
    )
    full = "|".join(f"(?<={re.escape(w)}{tail})" for w in sorted(words, key=lambda w: -len(w)))
    return f"(?:{ends})(?:{full})"


def _gate_regex(words: set[str], sep: str) -> re.Pattern[str]:
    """``sep`` (``=`` or ``:``) right after one of ``words`` in lower-cased text, maybe after a
    quote or a space (``password=``, ``"token":``, ``secret =``, ``\\"key\\":``). The pattern
    starts with the literal separator (a fast scan) and checks the name backwards with
    fixed-width lookbehinds, so the scan stops only briefly at each separator."""
    ws = sorted(words)
    return re.compile(
        rf"{re.escape(sep)}(?:{_suffixes(ws, '.')}"
        rf"|(?<=[\"' ].)(?:{_suffixes(ws, '.{2}')}"
        rf"|(?<=(?:\\\"|\\'|\" |' ).)(?:{_suffixes(ws, '.{3}')})))"
    )


def _redact(value: str, scheme: str | None = None) -> str | None:
    """The replacement of a value (after its auth ``scheme``, when it has one, which is kept);
    None when it is a placeholder already."""
    if scheme is None and (found := _SCHEME_RE().match(value)):
        scheme, value = found.group(), value[found.end() :]
    if not value or (value[0] == "<" and _PLACEHOLDER_RE.fullmatch(value)):
        return None
    return scheme + SECRET if scheme else SECRET


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def _name_before(s: str, sep: int) -> str:
    """The name that ends right before the separator at ``sep`` (after an optional closing
    quote and spaces): at most 64 name characters."""
    head = s[max(0, sep - 68) : sep].rstrip(" \t")
    if head.endswith(('\\"', "\\'")):
        head = head[:-2]
    elif head.endswith(('"', "'")):
        head = head[:-1]
    return head[len(head.rstrip(_NAME_CHARS)) :][-64:]


def _scrub_named(s: str, low: str, identifier: bool) -> str:
    """Replace the values after sensitive names, at the separators the gates found in ``low``
    (``s`` lower-cased, same positions)."""
    state = _STATE
    hits = [m.start() for m in state.gate_eq.finditer(low)] if "=" in low else []
    if ":" in low:
        hits = sorted(hits + [m.start() for m in state.gate_colon.finditer(low)])
    parts: list[str] = []
    last = 0
    for sep in hits:
        if sep < last:
            continue
        name = _name_before(s, sep)
        kind = state.name_kinds.get(name)
        if kind is None:
            kind = state.name_kind(name)
        if not kind or (identifier and kind == _STRICT):
            continue
        if kind == _COOKIE and s[sep] == ":":  # a Cookie header: the rest of the line
            line = _LINE_RE().match(s, sep + 1)
            assert line is not None
            value = line.group(1)
            if not value or _PLACEHOLDER_RE.fullmatch(value):
                continue
            parts += (s[last : line.start(1)], SECRET)
            last = line.end(1)
            continue
        v = _VALUE_RE().match(s, sep + 1)
        if v is None:
            continue
        group = "qv" if v.group("q") is not None else "v" if v.group("v") is not None else "ov"
        value = v.group(group)
        if not value:
            continue
        v_end = v.end(group)
        if group == "v":
            # a closing bracket the value did not open belongs to the text: {"token": 1}
            while (
                value
                and value[-1] in ")]}"
                and (value.count(value[-1]) > value.count(_OPENER[value[-1]]))
            ):
                value, v_end = value[:-1], v_end - 1
            if not value:
                continue
        if kind == _STRICT and not _STRICT_VALUE_RE().fullmatch(value):
            continue
        if group == "v":
            new = _redact(value, v.group("scheme") or "")
            v_start = v.start("scheme") if v.group("scheme") else v.start(group)
        else:
            new, v_start = _redact(value), v.start(group)
        if new is None:
            continue
        parts += (s[last:v_start], new)
        last = v_end
    if not parts:
        return s
    parts.append(s[last:])
    return "".join(parts)


# -- numbers: IBANs, cards, SSNs, phones (free text only) ----------------------------------------

# A number: a digit, "+" or "(" where no word or number goes on, then digits, spaces, dots,
# dashes and brackets. Each is classified on its own (a short string) by the patterns below.
_NUMBER_RE = _lazy(r"[0-9+(](?<![0-9A-Za-z.,+(].)(?<![0-9A-Za-z]-.)[0-9 ().+-]*+")
_DIGIT_GROUP_RE = _lazy(r"[0-9]+")
_DIGIT_SPLIT_RE = _lazy(r"([0-9]+)")
_NE = r"(?![0-9]|[.-][0-9])"  # a number's end inside a run
_SSN_RE = _lazy(rf"(?<![0-9])(?!000|666|9)[0-9]{{3}}-(?!00)[0-9]{{2}}-(?!0000)[0-9]{{4}}{_NE}")
_PHONE_NANP_RE = _lazy(
    r"(?<![0-9.+-])(?:1[ .-]?)?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])"
    rf"[2-9][0-9]{{2}}[ .-][0-9]{{4}}{_NE}"
)
_PHONE_NATIONAL_RE = _lazy(
    r"(?<![0-9.+-])(?<![0-9][ .-])"  # not the tail of a longer group of numbers
    rf"\(?0[1-9][0-9]{{0,3}}(?:\)[ ]?|[ .-])[0-9]{{2,8}}(?:[ .-][0-9]{{2,4}})*+{_NE}"
)
_SEPARATOR_RE = _lazy(r"[0-9]([ .-])(?=[0-9])")
_CARD_IIN_RE = _lazy(r"4|5[1-5]|2[2-7]|3[0-9]|6(?:011|4[4-9]|5|2)")
_IBAN_RE = _lazy(r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?: ?[A-Z0-9]){11,30}+")


_DOUBLED = {str(d): (2 * d - 9 if d > 4 else 2 * d) for d in range(10)}


def _luhn(digits: str) -> bool:
    odd = sum(map(int, digits[-1::-2]))
    return (odd + sum(map(_DOUBLED.__getitem__, digits[-2::-2]))) % 10 == 0


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and bool(_CARD_IIN_RE().match(digits)) and _luhn(digits)


def _cards(text: str) -> str:
    """``<card>`` for each Luhn-valid card number in a number: one digit group, or groups
    joined by single spaces or dashes (the number may hold others around it, as in
    ``order 12 4111 1111 1111 1111 2029``)."""
    parts = _DIGIT_SPLIT_RE().split(text)  # text, digits, text, digits, ..., text
    digits, between = parts[1::2], parts[2:-1:2]
    if len(digits) == 1:
        return text.replace(digits[0], "<card>") if _is_card(digits[0]) else text
    found = False
    i = 0
    while i < len(digits):
        run = ""
        for j in range(i, len(digits)):
            if j > i and between[j - 1] not in (" ", "-"):
                break
            run += digits[j]
            if len(run) > 19:
                break
            if len(run) >= 13 and _is_card(run):
                parts[2 * i + 1] = "<card>"
                for k in range(i + 1, j + 1):  # the groups and separators it covered
                    parts[2 * k], parts[2 * k + 1] = "", ""
                found = True
                i = j
                break
        i += 1
    return "".join(parts) if found else text


def _phone_groups(text: str, low: int, high: int) -> str:
    """``<phone>`` for the longest prefix of whole digit groups with ``low``-``high`` digits."""
    count = end = 0
    for g in _DIGIT_GROUP_RE().finditer(text):
        if count + len(g.group()) > high:
            break
        count += len(g.group())
        end = g.end()
    if count < low:
        return text
    if end < len(text) and text[end] == ")":
        end += 1
    return "<phone>" + text[end:]


def _phone_national(m: re.Match[str]) -> str:
    """Trunk-prefixed national numbers (``020 7946 0958``, ``01 23 45 67 89``): 10-12 digits,
    one kind of separator throughout (so ``05.11.2025 10`` is not one)."""
    text = m.group()
    if len(set(_SEPARATOR_RE().findall(text))) > 1:
        return text
    return _phone_groups(text, 10, 12)


def _number(m: re.Match[str]) -> str:
    text = m.group()
    end = m.end()
    if end < len(m.string) and m.string[end].isalnum() and text[-1:].isdigit():
        # glued to a word (a hex id such as 3381088656124fa1...): its last group is not a number
        text = text[: len(text.rstrip("0123456789"))]
    core = text.rstrip(" ().+-")
    if len(core) < 9 or len(core.encode().translate(None, b" ().+-")) < 9:
        return m.group()
    if core[0] == "+":  # international: + country code, 9-15 digits in all
        out = _phone_groups(core, 9, 15)
    else:
        out = _SSN_RE().sub("<ssn>", core) if "-" in core else core
        out = _cards(out)
        out = _PHONE_NANP_RE().sub("<phone>", out)
        out = _PHONE_NATIONAL_RE().sub(_phone_national, out)
    return m.group() if out == core else out + m.group()[len(core) :]


def _iban_ok(compact: str) -> bool:
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _iban(m: re.Match[str]) -> str:
    """``<iban>`` for the longest prefix (cut at a space) that passes the mod-97 check."""
    text = m.group()
    end = len(text)
    while end > 0:
        if _iban_ok(text[:end].replace(" ", "")):
            return "<iban>" + text[end:]
        end = text.rfind(" ", 0, end)
    return text


# The numbers gate: digits as "9", capitals as "A", anything else as "a", and spaces, dots,
# dashes and brackets dropped. Every card, SSN, phone number and IBAN then holds "999999999",
# an IBAN "AA99" too; an ISO timestamp ("2025-11-05T06:00:00Z" -> "99999999A99a99a99A") does
# not. bytes.translate is a C loop, several times faster than a regex character-class scan.
_SHAPE = bytes(
    ord("9") if 48 <= b <= 57 else ord("A") if 65 <= b <= 90 else ord("a") for b in range(256)
)
_SHAPE_DROP = b" ().-"


def _scrub_numbers(s: str) -> str:
    try:
        raw = s.encode()
    except UnicodeEncodeError:  # a lone surrogate
        raw = s.encode("utf-8", "surrogatepass")
    shape = raw.translate(_SHAPE, _SHAPE_DROP)
    if shape.count(b"9") < 9 or b"999999999" not in shape:  # counting one byte is a quick loop
        return s
    if b"AA99" in shape:
        s = _IBAN_RE().sub(_iban, s)
    return _NUMBER_RE().sub(_number, s)


# -- configuration -------------------------------------------------------------------------------

#: What ``configure(extra_patterns=...)`` takes: (regex or its text, placeholder).
Pattern = tuple[str | re.Pattern[str], str]


# Repeated strings (hosts, slugs, keys, the same message again) are looked up, not scanned: each
# cache holds at most this many entries and is emptied when full.
_CACHE_SIZE = 16384
_CLEAN_MAX_LEN = 256  # texts longer than this are not kept: the cache stays under ~4 MB


def _split_env(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


class _State:
    """What ``configure`` sets, and what is derived from it (rebuilt as a whole, then swapped
    in, so a recording thread always sees one consistent set)."""

    def __init__(
        self,
        patterns: list[tuple[re.Pattern[str], str]],
        sensitive: list[str],
        allow: list[str],
    ) -> None:
        self.patterns = patterns
        self.sensitive = sensitive
        self.allow = allow
        self.allow_norm = frozenset(_norm(k) for k in allow)
        self.suffixes = tuple(
            sorted({n for n in (_norm(k) for k in (*SENSITIVE_KEYS, *sensitive)) if n}, key=len)
        )
        self.words = _gate_words((*SENSITIVE_KEYS, *sensitive, *STRICT_NAMES))
        self.name_kinds: dict[str, int] = {}
        self.keys: dict[str, tuple[str, int]] = {}
        # Short strings seen to hold nothing, as text and as identifiers: a repeated one costs a
        # set lookup. Only unchanged strings are kept, so no secret stays in memory here.
        self.clean: set[str] = set()
        self.clean_ids: set[str] = set()

    # The gates are compiled the first time a text holds "=" or ":" (then kept: after the
    # first access they are plain attributes): compiling both is most of this module's import.
    @functools.cached_property
    def gate_eq(self) -> re.Pattern[str]:
        return _gate_regex(self.words, "=")

    @functools.cached_property
    def gate_colon(self) -> re.Pattern[str]:
        return _gate_regex(self.words, ":")

    def name_kind(self, name: str) -> int:
        """What the name before a separator in text says: 0 nothing, or _ANY/_STRICT/_COOKIE."""
        norm = _norm(name)
        if not norm or norm in self.allow_norm:
            kind = 0
        elif norm.endswith(self.suffixes):
            kind = _COOKIE if norm.endswith("cookie") else _ANY
        elif norm.endswith(("key", "sig", "signature")):
            kind = _STRICT
        else:
            kind = 0
        if len(self.name_kinds) >= 1024:
            self.name_kinds.clear()
        self.name_kinds[name] = kind
        return kind


def _compile(patterns: Iterable[Pattern]) -> list[tuple[re.Pattern[str], str]]:
    out = []
    for pattern, placeholder in patterns:
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        if not isinstance(placeholder, str) or rx.search(placeholder):
            raise ValueError(
                f"placeholder {placeholder!r} must be a string its pattern does not match"
            )
        out.append((rx, placeholder.replace("\\", "\\\\")))  # a literal, not a template
    return out


_STATE = _State([], _split_env(SENSITIVE_KEYS_ENV), _split_env(ALLOW_KEYS_ENV))


def configure(
    *,
    extra_patterns: Iterable[Pattern] | None = None,
    sensitive_keys: Iterable[str] | None = None,
    allow_keys: Iterable[str] | None = None,
) -> None:
    """Set what scrubbing adds to its built-in detectors (process-wide; call it at start-up).

    ``extra_patterns``: ``(regex, placeholder)`` pairs, applied first, to text and identifiers
    (the placeholder must not match its own regex). ``sensitive_keys``: more key names whose
    values are replaced whole, in attributes and after ``=``/``:`` in text. ``allow_keys``:
    attribute keys (exact, compared normalised) whose values are scrubbed as identifiers, so a
    framework's job id or a correlation UUID survives; an allowed key is never sensitive.
    Each argument given replaces what the environment or an earlier call set; None keeps it.
    """
    global _STATE
    old = _STATE
    _STATE = _State(
        _compile(extra_patterns) if extra_patterns is not None else old.patterns,
        [str(k) for k in sensitive_keys] if sensitive_keys is not None else old.sensitive,
        [str(k) for k in allow_keys] if allow_keys is not None else old.allow,
    )


def reset() -> None:
    """Back to the built-in detectors plus what the environment variables say."""
    global _STATE
    _STATE = _State([], _split_env(SENSITIVE_KEYS_ENV), _split_env(ALLOW_KEYS_ENV))


def is_sensitive_key(key: str) -> bool:
    """Whether values under ``key`` are replaced whole (allow-listed keys never are)."""
    norm = _norm(key)
    state = _STATE
    return bool(norm) and norm not in state.allow_norm and norm.endswith(state.suffixes)


# -- the passes ----------------------------------------------------------------------------------


def _scrub_once(s: str, identifier: bool) -> str:
    """One pass over ``s``. Detectors are grouped under one-character ``in`` checks (a
    ``memchr``), then each runs only when a literal it needs is in ``s``: most clean text costs
    a handful of ``in`` checks and two literal scans."""
    state = _STATE
    for rx, placeholder in state.patterns:
        s = rx.sub(placeholder, s)
    # A one-character check is a memchr; longer literals are looked for only behind one.
    if "-" in s:
        if "V" in s and "PRIVATE KEY" in s:
            s = _PRIVATE_KEY_RE().sub("<private-key>", s)
        if "sk-" in s:
            s = _ANTHROPIC_RE().sub("<anthropic-key>", s)
            s = _OPENAI_RE().sub("<openai-key>", s)
        if "x" in s and ("xox" in s or "xapp-" in s):
            s = _SLACK_RE().sub("<slack-token>", s)
        if "X" in s and "GOCSPX-" in s:
            s = _GOOGLE_KEY_RE().sub("<google-key>", s)
    if "@" in s:
        if "://" in s:
            s = _URL_CREDENTIALS_RE().sub("://<credentials>@", s)
        s = _scrub_emails(s)
    if "." in s:
        if "J" in s and "eyJ" in s:
            s = _JWT_RE().sub("<jwt>", s)
        if "ya29." in s:
            s = _GOOGLE_TOKEN_RE().sub("<google-token>", s)
        if "/" in s and "hooks.slack" in s:
            s = _SLACK_WEBHOOK_RE().sub("hooks.slack.com/<slack-webhook>", s)
    if "_" in s:
        if "gh" in s or "github_pat_" in s:
            s = _GITHUB_RE().sub("<github-token>", s)
        if "_live_" in s or "_test_" in s:
            s = _STRIPE_RE().sub("<stripe-key>", s)
        if "whsec_" in s:
            s = _STRIPE_WEBHOOK_RE().sub("<stripe-key>", s)
    if "A" in s:
        if "IA" in s or "ACCA" in s:
            s = _AWS_KEY_RE().sub("<aws-key>", s)
        if "AIza" in s:
            s = _GOOGLE_KEY_RE().sub("<google-key>", s)
        if "EARER" in s:
            s = _BEARER_UPPER_RE().sub(_bearer_upper, s)
    if "earer" in s:
        s = _BEARER_RE().sub(_bearer, s)
    if "=" in s or ":" in s:
        low = s.lower()  # the gates spell names in lower case
        if len(low) != len(s):  # a few non-ASCII letters lower to two characters
            low = s.translate(_ASCII_LOWER)
        if ("=" in s and state.gate_eq.search(low)) or (":" in s and state.gate_colon.search(low)):
            s = _scrub_named(s, low, identifier)
    if not identifier and "-" in s and _UUID_HINT.search(s):
        s = _UUID_RE().sub("<uuid>", s)
    if ":" in s and (("::" in s and _IP6_HINT.search(s)) or s.count(":") >= 7):
        s = _IP6_RE().sub(_ip6, s)
    if "." in s and s.count(".") >= 3 and _IP4_HINT.search(s):
        s = _IP4_RE().sub(_ip4, s)
    if not identifier and len(s) >= 9:
        s = _scrub_numbers(s)
    return s


def _scrub(s: str, identifier: bool) -> str:
    """Scrub until stable: a placeholder can make a neighbour match (``a@b.co`` + UUID, a URL
    whose credentials went first and then its name's value), so a changed string gets another
    pass; the result is a fixed point, which makes scrubbing idempotent."""
    out = _scrub_once(s, identifier)
    if out == s:
        return s
    for _ in range(8):
        again = _scrub_once(out, identifier)
        if again == out:
            break
        out = again
    return out


def _plain(s: str) -> bool:
    """Only lower-case ASCII letters and digits, with a letter (a word, a hex digest): nothing
    can match, so it is not even looked up. (The bytes methods are table lookups, several times
    faster than the str ones, which consult the Unicode database.)"""
    if not s.isascii() or _STATE.patterns:
        return False
    raw = s.encode("ascii")
    return raw.isalnum() and raw.islower()


def scrub_text(s: str | None) -> str | None:
    """Free text with secrets and personal data replaced by placeholders (None passes through)."""
    if not s:
        return s
    clean = _STATE.clean
    if s in clean:
        return s
    out = s if _plain(s) else _scrub(s, False)
    if out is s and len(s) <= _CLEAN_MAX_LEN:
        if len(clean) >= _CACHE_SIZE:
            clean.clear()
        clean.add(s)
    return out


def scrub_identifier(s: str | None) -> str | None:
    """A name or path (task slug or id, attribute key, file path, retrieval source) with
    secrets, e-mails and IPs replaced; UUIDs and numbers are kept, so ids still correlate."""
    if not s:
        return s
    clean = _STATE.clean_ids
    if s in clean:
        return s
    out = s if _plain(s) else _scrub(s, True)
    if out is s and len(s) <= _CLEAN_MAX_LEN:
        if len(clean) >= _CACHE_SIZE:
            clean.clear()
        clean.add(s)
    return out


def scrub_key(s: str | None) -> str | None:
    """An idempotency key or stack hash: kept as it is when it holds nothing (a hex digest
    always); one that holds a secret or an address becomes the SHA-256 of what it was, so it
    still tells runs (or groups) apart and a re-run still matches, without saying what it held."""
    if not s or _plain(s) or scrub_identifier(s) is s:
        return s
    return hashlib.sha256(s.encode("utf-8", "surrogatepass")).hexdigest()


_TEXT, _SENSITIVE, _ALLOWED = 0, 1, 2


def _key(key: str) -> tuple[str, int]:
    """A mapping key scrubbed as an identifier, and how its value is treated."""
    state = _STATE
    found = state.keys.get(key)
    if found is None:
        norm = _norm(key)
        if norm and norm in state.allow_norm:
            mode = _ALLOWED
        elif norm and norm.endswith(state.suffixes):
            mode = _SENSITIVE
        else:
            mode = _TEXT
        found = (scrub_identifier(key) or key, mode)
        if len(state.keys) >= 1024:
            state.keys.clear()
        state.keys[key] = found
    return found


def _value(v: Any, identifiers: bool) -> Any:
    if type(v) is str:
        return scrub_identifier(v) if identifiers else scrub_text(v)
    if isinstance(v, (list, tuple)):  # noqa: UP038 - the tuple form is the faster check
        scrub = scrub_identifier if identifiers else scrub_text
        return [scrub(x) if type(x) is str else _value(x, identifiers) for x in v]
    if isinstance(v, Mapping):
        out: dict[Any, Any] = {}
        for k, x in v.items():
            if type(k) is not str:
                out[k] = _value(x, identifiers)
                continue
            key, mode = _key(k)
            if mode == _TEXT:
                out[key] = _value(x, identifiers)
            elif mode == _ALLOWED:
                out[key] = _value(x, True)
            else:  # sensitive: replaced whole, unless there is nothing to hide
                out[key] = x if x is None or x == "" or isinstance(x, bool) else SECRET
        return out
    if isinstance(v, str):  # a str subclass
        return _value(str(v), identifiers)
    return v


def scrub_value(v: Any, *, identifiers: bool = False) -> Any:
    """Recursively scrub a JSON-like value: lists/tuples become lists, mapping keys are scrubbed
    as identifiers, a value under a sensitive key becomes ``<secret>`` (None, booleans and ""
    are kept), a value under an allow-listed key is scrubbed as an identifier, and strings are
    scrubbed as text (or as identifiers with ``identifiers=True``: paths, sources, parents)."""
    return _value(v, identifiers)


#: The built-in detectors, in the order they run: (what, placeholder, where).
DETECTORS: tuple[tuple[str, str, str], ...] = (
    ("private key block", "<private-key>", "text, identifiers"),
    ("credentials in a URL or connection string", "<credentials>", "text, identifiers"),
    ("e-mail address", "<email>", "text, identifiers"),
    ("JWT / JWE", "<jwt>", "text, identifiers"),
    ("AWS access key id", "<aws-key>", "text, identifiers"),
    ("GitHub token", "<github-token>", "text, identifiers"),
    ("Stripe secret / restricted key, webhook secret", "<stripe-key>", "text, identifiers"),
    ("Anthropic API key", "<anthropic-key>", "text, identifiers"),
    ("OpenAI API key", "<openai-key>", "text, identifiers"),
    ("Slack token", "<slack-token>", "text, identifiers"),
    ("Slack webhook URL", "<slack-webhook>", "text, identifiers"),
    ("Google API key, OAuth client secret", "<google-key>", "text, identifiers"),
    ("Google OAuth access token", "<google-token>", "text, identifiers"),
    ("Bearer token", "<bearer-token>", "text, identifiers"),
    ("value after a sensitive name", SECRET, "text, identifiers"),
    ("UUID", "<uuid>", "text"),
    ("IPv4 / IPv6 address", "<ip>", "text, identifiers"),
    ("IBAN", "<iban>", "text"),
    ("card number", "<card>", "text"),
    ("US SSN", "<ssn>", "text"),
    ("phone number", "<phone>", "text"),
)

__all__ = [
    "ALLOW_KEYS_ENV",
    "DETECTORS",
    "SECRET",
    "SENSITIVE_KEYS",
    "SENSITIVE_KEYS_ENV",
    "STRICT_NAMES",
    "configure",
    "is_sensitive_key",
    "reset",
    "scrub_identifier",
    "scrub_key",
    "scrub_text",
    "scrub_value",
]
