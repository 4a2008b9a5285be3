"""Identifier normalisation and SHA-256 hashing for ad platforms.

Meta and Google only match a hashed identifier if it was normalised exactly as they normalise
their own users' data, and their rules differ (Meta: phone as digits without ``+``; Google: phone
in E.164 with ``+``, Gmail addresses without dots or ``+tag``). Each rule set is one
``normaliser``; ``hash_identifier`` applies it and hashes the result.

Tessera's marts already store emails trimmed and lowercased and phones in E.164, but these rules
do not rely on that: a value from any mart or mapping is normalised here.

A value that is already a SHA-256 digest (64 hex characters) is passed through lowercased, never
hashed a second time: hashing a hash yields an identifier that matches nobody.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable

NORMALISERS = ("meta", "google")
KINDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "gender",
    "city",
    "state",
    "zip",
    "country",
    "external_id",
)

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_WHITESPACE = re.compile(r"\s+")
_NON_DIGITS = re.compile(r"\D+")
_US_ZIP = re.compile(r"(\d{5})(?:-?\d{4})?")
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
# Google asks for names without prefixes; these are the ones its formatting guide names plus
# their common spellings.
_NAME_PREFIXES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof"})


def is_sha256_hex(value: str) -> bool:
    return _SHA256_HEX.fullmatch(value) is not None


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hash_identifier(kind: str, value: str | None, normaliser: str) -> str | None:
    """Normalise ``value`` as an identifier of ``kind`` under ``normaliser``'s rules and return
    its SHA-256 as lowercase hex; None when nothing usable is left.

    An already-hashed value (64 hex characters) comes back lowercased, unhashed.
    """
    normalised = normalise_identifier(kind, value, normaliser)
    if normalised is None:
        return None
    if is_sha256_hex(normalised):
        return normalised.lower()
    return sha256_hex(normalised)


def normalise_identifier(kind: str, value: str | None, normaliser: str) -> str | None:
    """The plain text the platform expects before hashing, or None when nothing is left.

    An already-hashed value is returned unchanged: normalising a digest would corrupt it.
    """
    rules = _RULES.get(normaliser)
    if rules is None:
        raise ValueError(f"unknown normaliser {normaliser!r}; expected one of {NORMALISERS}")
    rule = rules.get(kind)
    if rule is None:
        raise ValueError(f"unknown identifier kind {kind!r}; expected one of {KINDS}")
    if value is None:
        return None
    stripped = str(value).strip()
    if is_sha256_hex(stripped):
        return stripped
    normalised = rule(stripped)
    return normalised or None


def _email_meta(value: str) -> str:
    return _WHITESPACE.sub("", value).lower()


def _email_google(value: str) -> str:
    email = _WHITESPACE.sub("", value).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return email
    if domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return ""
    return f"{local}@{domain}"


def _phone_digits(value: str) -> str:
    # "00" is the international call prefix in most countries; E.164 has no leading zeros.
    return _NON_DIGITS.sub("", value).lstrip("0")


def _phone_meta(value: str) -> str:
    return _phone_digits(value)


def _phone_google(value: str) -> str:
    digits = _phone_digits(value)
    return f"+{digits}" if digits else ""


def _letters_only(value: str) -> str:
    # Meta keeps non-Roman letters of names in UTF-8; NFC so one name has one byte sequence.
    text = unicodedata.normalize("NFC", value).lower()
    return "".join(char for char in text if char.isalpha())


def _name_google(value: str) -> str:
    words = unicodedata.normalize("NFC", value).lower().split()
    if len(words) > 1 and words[0].rstrip(".") in _NAME_PREFIXES:
        words = words[1:]
    return " ".join(words)


def _gender(value: str) -> str:
    first = value.lower()[:1]
    return first if first in ("m", "f") else ""


def _ascii_letters(value: str) -> str:
    return re.sub(r"[^a-z]", "", value.lower())


def _zip(value: str) -> str:
    compact = _WHITESPACE.sub("", value).lower()
    us_zip = _US_ZIP.fullmatch(compact)
    if us_zip:
        return us_zip.group(1)
    return re.sub(r"[^0-9a-z]", "", compact)


def _country(value: str) -> str:
    letters = _ascii_letters(value)
    # Only ISO 3166-1 alpha-2; a country name hashed would match nobody.
    return letters if len(letters) == 2 else ""


def _external_id(value: str) -> str:
    # An advertiser's own id: case and inner characters are significant.
    return value


_Rule = Callable[[str], str]
_SHARED: dict[str, _Rule] = {
    "gender": _gender,
    "city": _ascii_letters,
    "state": _ascii_letters,
    "zip": _zip,
    "country": _country,
    "external_id": _external_id,
}
_RULES: dict[str, dict[str, _Rule]] = {
    "meta": {
        **_SHARED,
        "email": _email_meta,
        "phone": _phone_meta,
        "first_name": _letters_only,
        "last_name": _letters_only,
    },
    "google": {
        **_SHARED,
        "email": _email_google,
        "phone": _phone_google,
        "first_name": _name_google,
        "last_name": _name_google,
    },
}
