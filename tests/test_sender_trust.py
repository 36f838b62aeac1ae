"""Sender trust: only our own MTA's DMARC verdict can mark a sender unverified (item 7)."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from helpdesk.inbound.trust import parse_authentication_results, sender_verified

OUR_MTA = "mx.kurs.example"
DATA = Path(__file__).parent / "data" / "machine"


def mail(*authentication_results: str) -> EmailMessage:
    """A learner's message whose Authentication-Results headers appear in the given order."""
    headers = "".join(f"Authentication-Results: {value}\n" for value in authentication_results)
    raw = (
        f"{headers}From: Kari Nordmann <kari.nordmann@example.no>\nTo: support@kurs.example\n"
        "Subject: Kursbevis\n\nHei!\n"
    )
    return BytesParser(policy=policy.default).parsebytes(raw.encode("utf-8"))


def test_without_an_authserv_id_from_is_taken_as_is() -> None:
    message = mail(f"{OUR_MTA}; dmarc=fail header.from=example.no")
    assert sender_verified(message, None) == (True, "no authserv-id configured")


def test_dmarc_fail_from_our_mta_marks_the_sender_unverified_with_a_readable_reason() -> None:
    message = mail(f"{OUR_MTA}; dmarc=fail (p=reject dis=none) header.from=example.no")
    verified, reason = sender_verified(message, OUR_MTA)

    assert verified is False
    assert reason == "dmarc=fail (p=reject dis=none) for example.no according to mx.kurs.example"


def test_dmarc_pass_from_our_mta_verifies_the_sender() -> None:
    verified, reason = sender_verified(
        mail(f"{OUR_MTA}; dmarc=pass header.from=example.no"), OUR_MTA
    )
    assert verified is True
    assert reason == "dmarc=pass for example.no according to mx.kurs.example"


def test_forged_pass_below_our_own_header_does_not_override_our_fail() -> None:
    message = BytesParser(policy=policy.default).parsebytes(
        (DATA / "forged-authentication-results.eml").read_bytes()
    )
    verified, reason = sender_verified(message, OUR_MTA)

    assert verified is False
    assert reason.startswith("dmarc=fail (policy=reject) for bedrift.example.no according to ")
    assert reason.endswith(": SPF not aligned (relaxed), No valid DKIM")


def test_dmarc_fail_stamped_by_someone_else_is_ignored() -> None:
    message = mail("mx.google.com; dmarc=fail (p=reject) header.from=example.no")
    assert sender_verified(message, OUR_MTA) == (
        True,
        "no DMARC result from mx.kurs.example; From taken as is",
    )


def test_authserv_id_that_merely_starts_with_ours_is_someone_else() -> None:
    message = mail(f"{OUR_MTA}.angriper.example; dmarc=fail header.from=example.no")
    assert sender_verified(message, OUR_MTA)[0] is True


def test_our_fail_below_a_header_from_an_internal_filter_still_counts() -> None:
    # A spam filter inside our network may stamp with its own id after our MTA did.
    message = mail(
        "filter.kurs.example; dmarc=pass header.from=example.no",
        f"{OUR_MTA}; dmarc=fail header.from=example.no",
    )
    assert sender_verified(message, OUR_MTA)[0] is False


def test_topmost_dmarc_result_of_ours_wins_over_an_older_one() -> None:
    message = mail(
        f"{OUR_MTA}; dmarc=pass header.from=example.no",
        f"{OUR_MTA}; dmarc=fail header.from=example.no",
    )
    assert sender_verified(message, OUR_MTA)[0] is True


def test_dmarc_result_in_our_second_header_counts_when_the_first_has_none() -> None:
    # OpenDKIM and OpenDMARC each add a header with the same authserv-id.
    message = mail(
        f"{OUR_MTA}; dkim=pass header.d=example.no",
        f"{OUR_MTA}; dmarc=fail header.from=example.no",
    )
    assert sender_verified(message, OUR_MTA)[0] is False


def test_authserv_id_is_compared_case_insensitively_and_may_carry_a_version() -> None:
    message = mail("MX.Kurs.Example 1; dmarc=fail header.from=example.no")
    assert sender_verified(message, "mx.kurs.EXAMPLE")[0] is False


def test_dmarc_inside_comments_and_quoted_strings_is_not_a_result() -> None:
    tricked_by_substrings = mail(
        f'{OUR_MTA}; dkim=pass reason="dmarc=fail; look-alike" (dmarc=fail; not really) '
        "header.d=example.no; dmarc=pass header.from=example.no"
    )
    assert sender_verified(tricked_by_substrings, OUR_MTA)[0] is True

    hidden_pass = mail(
        f"{OUR_MTA}; dmarc=fail (an earlier hop said dmarc=pass) header.from=a.example"
    )
    assert sender_verified(hidden_pass, OUR_MTA)[0] is False


def test_header_without_authserv_id_is_nobodys() -> None:
    # Microsoft 365 writes its results without an authserv-id.
    message = mail(
        "spf=pass (sender IP is 40.107.22.101) smtp.mailfrom=example.no; dkim=none; "
        "dmarc=fail action=none header.from=example.no;compauth=fail reason=001"
    )
    header = parse_authentication_results(str(message["Authentication-Results"]))
    assert header.authserv_id == ""
    assert sender_verified(message, OUR_MTA)[0] is True


def test_no_result_header_gives_no_verdict() -> None:
    assert sender_verified(mail(f"{OUR_MTA} 1; none"), OUR_MTA)[0] is True


def test_parser_reads_methods_properties_and_comments() -> None:
    header = parse_authentication_results(
        "mx.kurs.example 1;\n\tdkim=pass (2048-bit key; unprotected) header.d=example.no "
        "header.b=Ab3/Cd+e==;\n\tspf=pass smtp.mailfrom=kari@example.no;\n\t"
        'dmarc/1 = fail reason="No valid DKIM" (p=reject) header.from=example.no'
    )
    assert header.authserv_id == "mx.kurs.example"
    dkim, spf, dmarc = header.results
    assert (dkim.method, dkim.result, dkim.properties["header.b"]) == ("dkim", "pass", "Ab3/Cd+e==")
    assert dkim.comments == ("2048-bit key; unprotected",)
    assert spf.properties == {"smtp.mailfrom": "kari@example.no"}
    assert (dmarc.method, dmarc.result, dmarc.reason) == ("dmarc", "fail", "No valid DKIM")
    assert dmarc.properties == {"header.from": "example.no"}
    assert dmarc.comments == ("p=reject",)


def test_folded_header_is_read_across_lines() -> None:
    raw = (
        f"Authentication-Results: {OUR_MTA};\n\tdkim=none;\n\tdmarc=fail\n"
        "\t header.from=example.no\n"
        "From: kari@example.no\n\nHei\n"
    )
    message = BytesParser(policy=policy.default).parsebytes(raw.encode())
    assert sender_verified(message, OUR_MTA) == (
        False,
        "dmarc=fail for example.no according to mx.kurs.example",
    )


def test_malformed_header_with_stray_parentheses_and_quotes_still_parses() -> None:
    # A hostile sender controls headers below ours; parsing must always terminate.
    for value in [f"{OUR_MTA}; dmarc=fail) header.from=example.no", '(("x; dmarc="pass', ")))"]:
        parse_authentication_results(value)
    assert sender_verified(mail(f"{OUR_MTA}; dmarc=fail) header.from=example.no"), OUR_MTA) == (
        False,
        "dmarc=fail for example.no according to mx.kurs.example",
    )


_PIECES = st.sampled_from(["a", "b", ".", ";", "=", "(", ")", '"', "\\", " ", "\t", "\r\n ", "/"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES | st.sampled_from(["dmarc", "fail", "mx.kurs.example"])).map("".join))
def test_any_header_value_parses_without_error(value: str) -> None:
    header = parse_authentication_results(value)
    assert all(r.method and r.result for r in header.results)
