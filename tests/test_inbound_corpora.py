"""The parser against mail that others wrote, and against random and mutated input.

Corpora (pinned, fetched at test time, never committed): CPython's own email test messages
from the running interpreter's standard library, and the mail files in the source
distributions of mail-parser 4.8.0 (tests/mails/) and django-mailbox 4.10.1 (.eml files).
The sdists are cached under .pytest_cache, so only the first run downloads. A minimum count
of messages per corpus keeps a wrong path from passing with nothing tested. Without network
the downloads are skipped locally; under CI=true they fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpdesk.inbound.html import html_to_text
from helpdesk.inbound.parse import ParsedMessage, parse_message
from helpdesk.inbound.replies import extract_reply
from helpdesk.inbound.sanitise import sanitise_html

IN_CI = os.environ.get("CI", "").lower() == "true"
DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("parse_*.eml"))
SDIST_CACHE = "inbound-corpora"


def assert_sound(parsed: ParsedMessage) -> None:
    """What every parse result must satisfy, whatever the input was."""
    strings = [parsed.subject, parsed.text, parsed.html or "", parsed.from_name or ""]
    strings += [parsed.from_address or "", parsed.message_id or "", parsed.unparseable_reason or ""]
    strings += parsed.to + parsed.cc + parsed.reply_to + parsed.in_reply_to + parsed.references
    strings += parsed.defects + [a.filename for a in parsed.attachments]
    for value in strings:
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates: storable in PostgreSQL and SQLite
    assert "\n" not in parsed.subject and len(parsed.subject) <= 998
    assert parsed.from_address is None or "@" in parsed.from_address
    assert parsed.date is None or parsed.date.tzinfo is UTC
    assert parsed.unparseable == (parsed.unparseable_reason is not None)
    for attachment in parsed.attachments:
        assert 0 < len(attachment.filename) <= 200
        assert "/" not in attachment.filename and "\\" not in attachment.filename
        assert attachment.omitted or attachment.size == len(attachment.content)
    reply = extract_reply(parsed.text)
    assert reply or not parsed.text


def parse_all(messages: dict[str, bytes]) -> dict[str, ParsedMessage]:
    """Parse every message; fail with the names of those that broke an invariant."""
    results, failures = {}, []
    for name, raw in messages.items():
        try:
            results[name] = parse_message(raw)
            assert_sound(results[name])
        except Exception as error:  # collect all, so one report names every broken file
            failures.append(f"{name}: {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)
    return results


# --- corpora written by others --------------------------------------------------------


def cpython_messages() -> dict[str, bytes]:
    try:
        import test.test_email
    except ImportError:
        if IN_CI:
            pytest.fail("CI=true but this interpreter has no `test` package", pytrace=False)
        pytest.skip("this interpreter was built without the `test` package")
    folder = Path(test.test_email.__file__).parent / "data"
    return {path.name: path.read_bytes() for path in sorted(folder.glob("msg_*.txt"))}


@pytest.fixture(scope="session")
def sdist_messages(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str, Callable[[str], bool]], dict[str, bytes]]:
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir(SDIST_CACHE) if cache else tmp_path_factory.mktemp(SDIST_CACHE)

    def load(package: str, version: str, wanted: Callable[[str], bool]) -> dict[str, bytes]:
        archive = _cached_sdist(folder, package, version) or _download_sdist(
            folder, package, version
        )
        with tarfile.open(archive) as tar:
            return {
                member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers()
                if member.isfile() and wanted(member.name)
            }

    return load


def _cached_sdist(folder: Path, package: str, version: str) -> Path | None:
    wanted = re.sub(r"[-_.]+", "-", package).lower()
    for path in folder.glob(f"*-{version}.tar.gz"):
        if re.sub(r"[-_.]+", "-", path.name).lower().startswith(f"{wanted}-"):
            return path
    return None


def _download_sdist(folder: Path, package: str, version: str) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--disable-pip-version-check", f"{package}=={version}", "-d", str(folder)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
        problem = done.stderr.strip().splitlines()[-1:] if done.returncode else None
    except (OSError, subprocess.TimeoutExpired) as error:
        problem = [str(error)]
    archive = _cached_sdist(folder, package, version)
    if problem or archive is None:
        reason = f"could not download the {package}=={version} sdist: {problem}"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason + " (registry unreachable?)")
    return archive


def _in_mail_parser_mails(name: str) -> bool:
    parent, _, filename = name.rpartition("/")
    return parent.endswith("/tests/mails") and "." not in filename


def _is_django_mailbox_eml(name: str) -> bool:
    return name.endswith(".eml")


def test_every_cpython_email_test_message_parses() -> None:
    messages = cpython_messages()
    assert len(messages) >= 40, f"only {len(messages)} msg_*.txt found"

    parsed = parse_all(messages)

    assert parsed["msg_02.txt"].subject == "Ppp digest, Vol 1 #2 - 5 msgs"
    assert parsed["msg_16.txt"].subject == "Delivery Notification: Delivery has failed"
    assert parsed["msg_07.txt"].attachments[0].filename == "dingusfish.gif"
    assert parsed["msg_45.txt"].attachments[0].content_type == "application/pgp-signature"


def test_every_mail_parser_sample_parses(sdist_messages: Callable[..., dict[str, bytes]]) -> None:
    messages = sdist_messages("mail-parser", "4.8.0", _in_mail_parser_mails)
    assert len(messages) >= 20, f"only {len(messages)} files found under tests/mails/"

    parsed = {name.rpartition("/")[2]: result for name, result in parse_all(messages).items()}

    assert parsed["mail_test_1"].subject == "письмо уведом-е"
    assert parsed["mail_test_5"].subject == "Je prépare mon été zéro complexe !"
    assert parsed["mail_test_12"].subject == "代开各地增值税发票"
    assert parsed["mail_test_19"].from_address == "alice@example.com"
    assert parsed["mail_outlook_1"].unparseable  # an Outlook .msg file, not RFC 5322


def test_every_django_mailbox_sample_parses(
    sdist_messages: Callable[..., dict[str, bytes]],
) -> None:
    messages = sdist_messages("django-mailbox", "4.10.1", _is_django_mailbox_eml)
    assert len(messages) >= 18, f"only {len(messages)} .eml files found"

    parsed = {name.rpartition("/")[2]: result for name, result in parse_all(messages).items()}

    utf8 = parsed["message_with_utf8_attachment.eml"]
    assert utf8.subject == "Odpowiedź od burmistrza na wniosek stowarzyszenia"
    assert [a.filename for a in utf8.attachments] == ["piłkochwyty.jpg", "odpowiedź Burmistrza.jpg"]
    koi8 = parsed["message_with_koi8r_filename_attachments.eml"]
    assert koi8.subject == "Предложения от НИУ ВШЭ на 2016 год"
    assert "Ведомости.pdf" in [a.filename for a in koi8.attachments]
    attached = parsed["message_with_rfc822_attachment.eml"].attachments
    assert [(a.filename, a.content_type) for a in attached] == [
        ("Attached email.eml", "message/rfc822")
    ]


def test_every_own_fixture_parses() -> None:
    assert len(FIXTURES) >= 14
    parse_all({path.name: path.read_bytes() for path in FIXTURES})


# --- random and mutated input ---------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(raw: bytes) -> None:
    assert_sound(parse_message(raw))


@PROPERTY_SETTINGS
@given(
    st.binary(max_size=300),
    st.sampled_from(
        ["From", "To", "Subject", "Content-Type", "Content-Disposition", "Date", "References"]
    ),
)
def test_any_header_value_never_raises(value: bytes, field: str) -> None:
    value = value.replace(b"\r", b" ").replace(b"\n", b" ")
    raw = b"From: kari@example.no\r\n%s: %s\r\n\r\nHei\r\n" % (field.encode(), value)

    assert_sound(parse_message(raw, max_attachment_bytes=100))


def _mutations() -> st.SearchStrategy[tuple[str, int, bytes]]:
    inserts = st.sampled_from(
        [b"\r", b"\n", b"\x00", b"\r\n\r\n", b"\xff\xfe", b"=?", b"--", b"\r\n "]
    )
    return st.tuples(
        st.sampled_from(["truncate", "flip", "insert", "duplicate-line", "delete"]),
        st.integers(min_value=0, max_value=1 << 20),
        inserts,
    )


def mutate(raw: bytes, mutations: list[tuple[str, int, bytes]]) -> bytes:
    for kind, position, insert in mutations:
        at = position % (len(raw) + 1)
        if kind == "truncate":
            raw = raw[:at]
        elif kind == "flip" and at < len(raw):
            raw = raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1 :]
        elif kind == "insert":
            raw = raw[:at] + insert + raw[at:]
        elif kind == "duplicate-line":
            start = raw.rfind(b"\n", 0, at) + 1
            end = raw.find(b"\n", at)
            line = raw[start : end + 1 if end >= 0 else len(raw)]
            raw = raw[:start] + line + line + raw[start + len(line) :]
        elif kind == "delete":
            raw = raw[:at] + raw[at + 1 + position % 64 :]
    return raw


@PROPERTY_SETTINGS
@given(st.sampled_from(FIXTURES), st.lists(_mutations(), min_size=1, max_size=6))
def test_mutated_messages_never_raise(
    fixture: Path, mutations: list[tuple[str, int, bytes]]
) -> None:
    raw = mutate(fixture.read_bytes(), mutations)

    assert_sound(parse_message(raw, max_attachment_bytes=1000))


@PROPERTY_SETTINGS
@given(st.text(max_size=2000))
def test_reply_extraction_never_raises_or_returns_nothing(text: str) -> None:
    reply = extract_reply(text)

    assert reply or not text
    assert len(reply) <= len(text)


HTML_PIECES = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<a href='https://x.example'>",
        "</a>",
        "<blockquote>",
        "</blockquote>",
        "<ul>",
        "<li>",
        "</ul>",
        "<br>",
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<",
        ">",
        "&",
        "&amp;",
        "&#",
        "<img src='cid:a'>",
        "<pre>",
        "</pre>",
        "<td>",
        "<head>",
        "<body>",
        "\n",
    ]
)


@PROPERTY_SETTINGS
@given(st.lists(st.one_of(HTML_PIECES, st.text(max_size=20)), max_size=80))
def test_any_html_converts_and_sanitises_without_raising(pieces: list[str]) -> None:
    html = "".join(pieces)

    assert isinstance(html_to_text(html), str)
    assert "<script" not in sanitise_html(html)
