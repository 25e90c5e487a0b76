"""Redaction of IP addresses and dates of birth, and what must stay (versions, plain dates, times)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_orchestrator.security import find_sensitive, redact

# Ordinary words around the values; none of them is a version marker ("v", "version", "build", ...).
WORDS = [
    "the",
    "server",
    "at",
    "from",
    "our",
    "host",
    "login",
    "fails",
    "please",
    "check",
    "office",
    "and",
    "gateway",
    "customer",
    "sent",
    "ticket",
    "since",
    "today",
    "network",
    "proxy",
    "address",
    "is",
]
BIRTH_MARKERS = [
    "DOB:",
    "DOB",
    "dob -",
    "D.O.B.",
    "d.o.b:",
    "date of birth",
    "Date of birth:",
    "born on",
    "Born",
    "born in",
    "birthdate:",
    "birth date is",
    "Birthday:",
    "(DOB)",
]


def _date_formats(day: datetime.date) -> list[str]:
    return [
        f"{day:%d/%m/%Y}",
        f"{day:%m/%d/%Y}",
        f"{day:%d/%m/%y}",
        f"{day:%Y-%m-%d}",
        f"{day:%Y.%m.%d}",
        f"{day:%d.%m.%Y}",
        f"{day.day}-{day.month}-{day.year}",
        f"{day.day} {day:%b} {day.year}",
        f"{day.day} {day:%B}, {day.year}",
        f"{day:%B} {day.day}, {day.year}",
        f"{day:%b}. {day.day} {day.year}",
        f"{day.day}th of {day:%B} {day.year}",
        f"{day:%B} {day.year}",
    ]


words = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)


# -- IP addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server 10.0.0.1, gateway 192.168.1.254:8080", "server [REDACTED:ipv4], gateway [REDACTED:ipv4]:8080"),
        ("blocked range 10.0.0.0/8.", "blocked range [REDACTED:ipv4]/8."),
        ("see http://172.16.5.4/admin", "see http://[REDACTED:ipv4]/admin"),
        ("ip=255.255.255.255", "ip=[REDACTED:ipv4]"),
        ("from 2001:db8::1: connection refused", "from [REDACTED:ipv6]: connection refused"),
        ("link-local fe80::1%eth0 down", "link-local [REDACTED:ipv6] down"),
        ("curl http://[2001:db8:85a3::8a2e:370:7334]:443/", "curl http://[[REDACTED:ipv6]]:443/"),
        ("mapped ::ffff:10.1.2.3 and loopback ::1", "mapped [REDACTED:ipv6] and loopback ::1"),
        ("full 2001:0db8:0000:0000:0000:ff00:0042:8329.", "full [REDACTED:ipv6]."),
    ],
)
def test_ip_addresses_are_redacted(text, expected):
    assert redact(text) == expected
    assert {kind for kind, _ in find_sensitive(text)} <= {"ipv4", "ipv6"}


@pytest.mark.parametrize(
    "text",
    [
        "upgraded to v2.10.4.1 and 1.2.3, then version 4.2.1.0 and build: 10.0.0.1",
        "release 1.0.0.0, fw 2.1.0.3, 1.2.3-beta.1, 1.2.3.4-rc1",
        "a 1.2.3.4.5 build number, 256.1.1.1, 01.02.03.04, pi is 3.14159, 2.5 GB",
        "meetings at 12:30:45 and 10:30; ratio 16:9; John 3:16",
        "std::vector<int> v; Foo::bar(); x :: Int; a :: b; the :: operator",
        "MAC 00:1a:2b:3c:4d:5e and 00:1A:2B:3C:4D:5E",
        "timestamp 2024-01-15T10:30:45Z",
    ],
)
def test_versions_times_and_code_are_not_ip_addresses(text):
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "cannot reach redis://127.0.0.1:6379/0",
        "listening on 0.0.0.0:8000 and [::]:8000",
        "health check http://[::1]:8080/health and 127.10.20.30",
        "loopback ::1, mapped ::ffff:127.0.0.1, unspecified ::",
    ],
)
def test_loopback_and_unspecified_addresses_are_kept(text):
    assert redact(text) == text
    assert find_sensitive(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "redis://127.0.0.1:6379 then redis://10.1.2.3:6379",
            "redis://127.0.0.1:6379 then redis://[REDACTED:ipv4]:6379",
        ),
        ("bind 0.0.0.0, client 192.168.0.17", "bind 0.0.0.0, client [REDACTED:ipv4]"),
        ("client 8.8.8.8 via ::1", "client [REDACTED:ipv4] via ::1"),
        ("peer [2001:db8::7]:443 and [::1]:443", "peer [[REDACTED:ipv6]]:443 and [::1]:443"),
    ],
)
def test_public_and_private_addresses_beside_loopback_are_redacted(text, expected):
    assert redact(text) == expected


def _names_a_host(address) -> bool:
    """Loopback and unspecified addresses (also IPv4-mapped ones) are kept on purpose: they name nobody."""
    mapped = getattr(address, "ipv4_mapped", None)
    address = address if mapped is None else mapped
    return not (address.is_loopback or address.is_unspecified)


@settings(max_examples=300, deadline=None)
@given(
    words,
    st.ip_addresses(v=4).filter(_names_a_host),
    st.sampled_from(["", "(", "[", "http://", "host=", "@"]),
    st.sampled_from(["", ".", ",", ":8080", ")", "]", "/24", "/path"]),
    words,
)
def test_any_ipv4_address_in_text_is_redacted(before, address, left, right, after):
    text = f"{before} {left}{address}{right} {after}"
    out = redact(text)
    assert str(address) not in out and "[REDACTED:ipv4]" in out
    assert redact(out) == out


@settings(max_examples=300, deadline=None)
@given(
    words,
    st.ip_addresses(v=6).filter(_names_a_host),
    st.sampled_from(["", "(", "http://[", "host=", "addr "]),
    st.sampled_from(["", ".", ",", ")", "/64", "]:443", "%eth0"]),
    words,
)
def test_any_ipv6_address_in_text_is_redacted(before, address, left, right, after):
    text = f"{before} {left}{address}{right} {after}"
    out = redact(text)
    assert str(address) not in out and "[REDACTED:ipv6]" in out
    assert redact(out) == out


loopback_in_text = st.one_of(
    st.tuples(
        st.sampled_from(["", "(", "http://", "redis://", "host="]),
        st.one_of(st.ip_addresses(network="127.0.0.0/8").map(str), st.just("0.0.0.0")),
        st.sampled_from(["", ".", ",", ":6379", ")", "/0"]),
    ),
    st.tuples(
        st.sampled_from(["", "(", "http://[", "host="]),
        st.sampled_from(["::1", "::", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1", "::ffff:0.0.0.0"]),
        st.sampled_from(["", ".", ",", ")", "]:8080"]),
    ),
).map("".join)


@settings(max_examples=200, deadline=None)
@given(words, loopback_in_text, words)
def test_any_loopback_or_unspecified_address_in_text_is_kept(before, address, after):
    text = f"{before} {address} {after}"
    assert redact(text) == text


@settings(max_examples=200, deadline=None)
@given(words, st.ip_addresses(v=6).filter(_names_a_host), words)
def test_ipv6_addresses_in_exploded_form_are_redacted(before, address, after):
    text = f"{before} {address.exploded} {after}"
    assert address.exploded not in redact(text)


# -- dates of birth -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DOB: 01/02/1980", "DOB: [REDACTED:date_of_birth]"),
        ("date of birth 1980-02-01, member since 2020", "date of birth [REDACTED:date_of_birth], member since 2020"),
        ("she was born on 2 Feb 1980.", "she was born on [REDACTED:date_of_birth]."),
        ("D.O.B. 1980.02.01", "D.O.B. [REDACTED:date_of_birth]"),
        ("Birth date (DOB): 12-31-99", "Birth date (DOB): [REDACTED:date_of_birth]"),
        ("Date of birth is February 2nd, 1980", "Date of birth is [REDACTED:date_of_birth]"),
    ],
)
def test_dates_of_birth_are_redacted_and_the_marker_kept(text, expected):
    assert redact(text) == expected
    assert "date_of_birth" in {kind for kind, _ in find_sensitive(text)}


@pytest.mark.parametrize(
    "text",
    [
        "the export has failed since 2026-11-01",
        "invoice dated 01/02/1980 and due 2 Feb 2024",
        "born in 1980",  # a year alone is not a date of birth
        "my birthday is next week",
        "the stubborn 2024-03-01 import",
    ],
)
def test_plain_dates_are_kept(text):
    assert redact(text) == text


@settings(max_examples=300, deadline=None)
@given(
    words,
    st.sampled_from(BIRTH_MARKERS),
    st.dates(datetime.date(1900, 1, 1), datetime.date(2025, 12, 31)),
    st.integers(0, 12),
    words,
)
def test_generated_dates_of_birth_are_redacted(before, marker, day, form, after):
    birth_date = _date_formats(day)[form]
    text = f"{before} {marker} {birth_date} {after}"
    out = redact(text)
    assert birth_date not in out and "[REDACTED:date_of_birth]" in out
    assert redact(out) == out


# -- versions -------------------------------------------------------------------------------------

parts = st.integers(0, 999).map(str)
small_parts = st.integers(0, 99).map(str)
versions = st.one_of(
    st.lists(parts, min_size=2, max_size=4).map(lambda p: "v" + ".".join(p)),
    st.lists(small_parts, min_size=2, max_size=3).map(".".join),
    st.tuples(
        st.sampled_from(["version ", "Version: ", "build ", "release ", "fw "]),
        st.lists(parts, min_size=4, max_size=4).map(".".join),
    ).map("".join),
    st.tuples(
        st.lists(small_parts, min_size=3, max_size=3).map(".".join), st.sampled_from(["-beta.1", "-rc.2", "+build.7"])
    ).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(words, versions, words)
def test_version_strings_are_not_redacted(before, version, after):
    text = f"{before} {version} {after}"
    assert redact(text) == text
