"""Signature verdicts against an HMAC written here from Plivo's documented algorithm."""

from __future__ import annotations

import pytest
from helpers.signing import ref_v2, ref_v3
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from plivo.utils import validate_signature, validate_v3_signature

from verifycli.signature import (
    Checker,
    SignatureResult,
    new_nonce,
    sign_v2,
    sign_v3,
    signed_headers,
)

URL = "https://abcd.ngrok-free.app/verify/callback"
TOKEN = "token-of-the-subaccount"
MAIN = "token-of-the-main-account"
PARAMS = {
    "SessionUUID": "4124e518-a8c9-4feb-8cff-d86636ba9234",
    "ChannelStatus": "delivered",
    "SessionStatus": "in-progress",
    "ChannelErrorCode": "",
    "AttemptSequence": "1",
}


def headers_v3(sig: str, nonce: str = "12345678901234567890", **more: str) -> CIMultiDict[str]:
    return CIMultiDict({"X-Plivo-Signature-V3": sig, "X-Plivo-Signature-V3-Nonce": nonce, **more})


@pytest.mark.parametrize("url", [URL, URL + "?a=1&b=", URL + "/?z=2&a=1"])
@pytest.mark.parametrize("method", ["POST", "GET"])
def test_sign_v3_matches_reference_and_sdk(method: str, url: str) -> None:
    """sign_v3 equals the reference HMAC, and the plivo SDK validates it."""
    params = PARAMS if method == "POST" else {}
    ours = sign_v3(method, url, params, "9876543210", TOKEN)
    assert ours == ref_v3(method, url, params, "9876543210", TOKEN)
    assert validate_v3_signature(method, url, "9876543210", TOKEN, ours, dict(params))


def test_sign_v2_matches_reference_and_sdk() -> None:
    """sign_v2 ignores the query, equals the reference HMAC, and the SDK validates it."""
    ours = sign_v2(URL + "?x=1", "555", TOKEN)
    assert ours == ref_v2(URL, "555", TOKEN)
    assert validate_signature(URL + "?x=1", "555", ours, TOKEN)


def test_valid_v3() -> None:
    """A reference V3 signature is valid, scheme v3."""
    result = Checker(TOKEN).check(
        "POST", URL, headers_v3(ref_v3("POST", URL, PARAMS, "1", TOKEN), "1"), PARAMS
    )
    assert (result.verdict, result.scheme) == ("valid", "v3")


def test_valid_v3_get_with_query() -> None:
    """A GET callback signs its query string; the checker reads it from the URL."""
    url = URL + "?SessionUUID=abc&ChannelErrorCode="
    sig = ref_v3("GET", url, {}, "1", TOKEN)
    assert Checker(TOKEN).check("GET", url, headers_v3(sig, "1"), {}).verdict == "valid"


def test_any_of_several_v3_signatures_counts() -> None:
    """A V3 header may hold several comma-separated signatures; one match is enough."""
    good = ref_v3("POST", URL, PARAMS, "1", TOKEN)
    value = f"bm9wZQ==, {good},Zm9v"
    assert Checker(TOKEN).check("POST", URL, headers_v3(value, "1"), PARAMS).verdict == "valid"


def test_v3_mismatch_is_invalid_even_when_v2_matches() -> None:
    """V2 does not cover the body, so a V3 mismatch wins over a V2 match."""
    tampered = {**PARAMS, "ChannelStatus": "failed"}
    headers = headers_v3(
        ref_v3("POST", URL, PARAMS, "1", TOKEN),
        "1",
        **{"X-Plivo-Signature-V2": ref_v2(URL, "2", TOKEN), "X-Plivo-Signature-V2-Nonce": "2"},
    )
    result = Checker(TOKEN).check("POST", URL, headers, tampered)
    assert (result.verdict, result.scheme) == ("invalid", "v3")


def test_valid_v2_only() -> None:
    """A request with only V2 headers is checked with V2."""
    headers = CIMultiDict(
        {"X-Plivo-Signature-V2": ref_v2(URL, "77", TOKEN), "X-Plivo-Signature-V2-Nonce": "77"}
    )
    result = Checker(TOKEN).check("POST", URL, headers, PARAMS)
    assert (result.verdict, result.scheme) == ("valid", "v2")


def test_ma_v3_valid_with_main_token() -> None:
    """The Ma- header is checked against PLIVO_MAIN_AUTH_TOKEN."""
    headers = CIMultiDict(
        {
            "X-Plivo-Signature-Ma-V3": ref_v3("POST", URL, PARAMS, "1", MAIN),
            "X-Plivo-Signature-V3-Nonce": "1",
        }
    )
    result = Checker(TOKEN, MAIN).check("POST", URL, headers, PARAMS)
    assert (result.verdict, result.scheme) == ("valid", "ma-v3")


def test_unsigned() -> None:
    """No signature headers at all is `unsigned`."""
    assert Checker(TOKEN).check("POST", URL, CIMultiDict(), PARAMS).verdict == "unsigned"


def test_unchecked_without_token() -> None:
    """Signed, but no token configured: `unchecked`, and the detail names the variable."""
    result = Checker(None).check("POST", URL, headers_v3("abc", "1"), PARAMS)
    assert result.verdict == "unchecked"
    assert "PLIVO_AUTH_TOKEN" in result.detail


def test_an_empty_nonce_is_judged_as_plivo_utils_judges_it() -> None:
    """A signature made with an empty nonce is what plivo.utils calls valid, so it is valid;
    the empty nonce is kept (replay detection then covers every request that uses it)."""
    from plivo.utils.signature_v3 import validate_v3_signature

    sig = ref_v3("POST", URL, PARAMS, "", TOKEN)
    assert validate_v3_signature("POST", URL, "", TOKEN, sig, dict(PARAMS))
    result = Checker(TOKEN).check("POST", URL, headers_v3(sig, ""), PARAMS)
    assert (result.verdict, result.nonce) == ("valid", "")


def test_put_does_not_validate_with_a_post_signature() -> None:
    """Plivo calls back with GET or POST only (plivo.utils refuses any other method): a PUT
    carrying a good POST signature is invalid, with V3 and with V2."""
    v3 = headers_v3(ref_v3("POST", URL, PARAMS, "n-1", TOKEN), "n-1")
    v2 = signed_headers("POST", URL, PARAMS, TOKEN, schemes=("v2",))
    for headers in (v3, v2):
        assert Checker(TOKEN).check("POST", URL, headers, PARAMS).verdict == "valid"
        result = Checker(TOKEN).check("PUT", URL, headers, PARAMS)
        assert result.verdict == "invalid" and "GET or POST" in result.detail


def test_only_the_first_64_v3_signatures_are_tried() -> None:
    """The documented CPU guard: a good signature 65th in the header is not found."""
    good = ref_v3("POST", URL, PARAMS, "n-1", TOKEN)
    padding = ",".join(["AAAA"] * 64)
    late = Checker(TOKEN).check("POST", URL, headers_v3(f"{padding},{good}", "n-1"), PARAMS)
    early = Checker(TOKEN).check("POST", URL, headers_v3(f"{good},{padding}", "n-1"), PARAMS)
    assert (late.verdict, early.verdict) == ("invalid", "valid")


def test_garbage_signature_is_invalid() -> None:
    """Non-base64 junk in the header is an ordinary mismatch, not an error."""
    result = Checker(TOKEN).check("POST", URL, headers_v3("%%%\u00e9,,,", "1"), PARAMS)
    assert result.verdict == "invalid"


@pytest.mark.parametrize(
    ("signed_url", "received_url", "phrase"),
    [
        (URL + "/", URL, "with a trailing slash"),
        (URL, URL + "/", "without the trailing slash"),
        (URL.replace("https", "http"), URL, "with http:// instead of https://"),
        ("https://abcd.ngrok-free.app:443/verify/callback", URL, "with the port :443"),
        (URL, "https://abcd.ngrok-free.app:443/verify/callback", "without the port :443"),
    ],
)
def test_diagnosis_names_the_url_variant(signed_url: str, received_url: str, phrase: str) -> None:
    """An invalid verdict says which URL variant the sender signed."""
    sig = ref_v3("POST", signed_url, PARAMS, "1", TOKEN)
    result = Checker(TOKEN).check("POST", received_url, headers_v3(sig, "1"), PARAMS)
    assert result.verdict == "invalid"
    assert phrase in result.detail
    assert signed_url in result.detail


def test_diagnosis_local_address() -> None:
    """A sender that signed the local address instead of the public URL is named as such."""
    local = "http://127.0.0.1:8080/verify/callback"
    sig = ref_v3("POST", local, PARAMS, "1", TOKEN)
    result = Checker(TOKEN).check("POST", URL, headers_v3(sig, "1"), PARAMS, local_url=local)
    assert "local address" in result.detail


def test_diagnosis_main_account_token() -> None:
    """A V3 header signed with the main account's token is diagnosed as such."""
    sig = ref_v3("POST", URL, PARAMS, "1", MAIN)
    result = Checker(TOKEN, MAIN).check("POST", URL, headers_v3(sig, "1"), PARAMS)
    assert result.verdict == "invalid"
    assert "PLIVO_MAIN_AUTH_TOKEN" in result.detail


def test_diagnosis_token_set_in_the_wrong_variable() -> None:
    """A main token configured as PLIVO_AUTH_TOKEN is spotted through the Ma-V3 header."""
    headers = headers_v3(
        ref_v3("POST", URL, PARAMS, "1", TOKEN),
        "1",
        **{"X-Plivo-Signature-Ma-V3": ref_v3("POST", URL, PARAMS, "1", MAIN)},
    )
    result = Checker(MAIN).check("POST", URL, headers, PARAMS)
    assert result.verdict == "invalid"
    assert "set it as PLIVO_MAIN_AUTH_TOKEN" in result.detail


def test_diagnosis_method() -> None:
    """A POST-signed callback received as GET is diagnosed by method."""
    sig = ref_v3("POST", URL, PARAMS, "1", TOKEN)
    result = Checker(TOKEN).check("GET", URL, headers_v3(sig, "1"), PARAMS)
    assert "signed as a POST request" in result.detail


def test_diagnosis_fallback_names_token_and_url() -> None:
    """With no variant matching, the detail names the token variable and the URL."""
    result = Checker(TOKEN).check(
        "POST", URL, headers_v3(ref_v3("POST", URL, PARAMS, "1", "x"), "1"), PARAMS
    )
    assert result.detail.startswith("v3 does not match PLIVO_AUTH_TOKEN for " + URL)


def test_signed_headers_carry_every_scheme() -> None:
    """signed_headers asked for v3 and v2 emits V3, Ma-V3, V2, Ma-V2 and both nonces, all valid."""
    headers = signed_headers("POST", URL, PARAMS, TOKEN, MAIN, ("v3", "v2"))
    n3, n2 = headers["X-Plivo-Signature-V3-Nonce"], headers["X-Plivo-Signature-V2-Nonce"]
    assert headers["X-Plivo-Signature-V3"] == ref_v3("POST", URL, PARAMS, n3, TOKEN)
    assert headers["X-Plivo-Signature-Ma-V3"] == ref_v3("POST", URL, PARAMS, n3, MAIN)
    assert headers["X-Plivo-Signature-V2"] == ref_v2(URL, n2, TOKEN)
    assert headers["X-Plivo-Signature-Ma-V2"] == ref_v2(URL, n2, MAIN)


def test_result_never_contains_the_token() -> None:
    """No verdict detail ever quotes a token."""
    sig = ref_v3("POST", URL, PARAMS, "1", "other")
    for checker in (Checker(TOKEN, MAIN), Checker(MAIN), Checker(None, MAIN)):
        detail = checker.check("POST", URL, headers_v3(sig, "1"), PARAMS).detail
        assert TOKEN not in detail and MAIN not in detail


def test_v2_is_computed_as_the_sdk_computes_it_for_a_url_with_params() -> None:
    """A `;params` URL signs and checks as plivo.utils.validate_signature has it (urlparse)."""
    from plivo.utils import validate_signature

    from verifycli.signature import Checker, sign_v2

    url = "https://example.com/hooks/verify;jsessionid=abc?x=1"
    signature = sign_v2(url, "12345", "tok")
    assert validate_signature(url, "12345", signature, "tok")
    headers = {"X-Plivo-Signature-V2": signature, "X-Plivo-Signature-V2-Nonce": "12345"}
    assert Checker("tok").check("POST", url, headers, {}).verdict == "valid"


def test_senders_sign_v2_by_default_and_v3_only_when_asked() -> None:
    """signed_headers gives V2, Ma-V2 and the V2 nonce unless V3 is asked for."""
    from verifycli.signature import signed_headers

    plain = signed_headers("POST", "https://example.com/cb", {"a": "1"}, "tok")
    assert set(plain) == {
        "X-Plivo-Signature-V2",
        "X-Plivo-Signature-Ma-V2",
        "X-Plivo-Signature-V2-Nonce",
    }
    both = signed_headers("POST", "https://example.com/cb", {"a": "1"}, "tok", "main", ("v3", "v2"))
    assert "X-Plivo-Signature-Ma-V3" in both and "X-Plivo-Signature-V3-Nonce" in both


@pytest.mark.parametrize(
    ("ma_token", "verdict", "scheme"),
    [(MAIN, "valid", "ma-v2"), ("not-the-main-token", "invalid", "v2")],
)
def test_ma_v2_alone_decides_the_verdict(ma_token: str, verdict: str, scheme: str) -> None:
    """V2 signed with a wrong token: the verdict is valid exactly when Ma-V2 matches the main
    account's token (a main account signs Ma-V2 only with its own token)."""
    headers = CIMultiDict(
        {
            "X-Plivo-Signature-V2": ref_v2(URL, "55", "a-token-nobody-configured"),
            "X-Plivo-Signature-Ma-V2": ref_v2(URL, "55", ma_token),
            "X-Plivo-Signature-V2-Nonce": "55",
        }
    )
    result = Checker(TOKEN, MAIN).check("POST", URL, headers, PARAMS)
    assert (result.verdict, result.scheme) == (verdict, scheme)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    params=st.dictionaries(_TEXT, st.one_of(_TEXT, st.lists(_TEXT, min_size=1, max_size=3))),
    nonce=st.text(alphabet="0123456789", max_size=20),
)
def test_v3_canonical_string_is_the_sdks(params: dict[str, str | list[str]], nonce: str) -> None:
    """The string-only V3 builder gives the bytes plivo's generic one gives, repeats included."""
    from plivo.utils.signature_v3 import construct_post_url, get_signature_v3

    canonical = construct_post_url(URL, dict(params)).decode()
    expected = get_signature_v3(TOKEN.encode(), canonical, nonce).decode()
    assert sign_v3("POST", URL, params, nonce, TOKEN) == expected


def headers_v2(sig: str, nonce: str = "55", **more: str) -> CIMultiDict[str]:
    return CIMultiDict({"X-Plivo-Signature-V2": sig, "X-Plivo-Signature-V2-Nonce": nonce, **more})


def test_a_result_as_a_record_is_verdict_scheme_and_detail() -> None:
    """to_dict gives the three keys stored under `signature`, and not the nonce."""
    result = SignatureResult("valid", "v2", "v2 matches PLIVO_AUTH_TOKEN", "55")
    assert result.to_dict() == {
        "verdict": "valid",
        "scheme": "v2",
        "detail": "v2 matches PLIVO_AUTH_TOKEN",
    }


def test_a_replayed_result_keeps_scheme_and_nonce_and_names_the_first_event() -> None:
    """replayed() turns a verdict into `replayed`, same scheme and nonce, citing the event."""
    replayed = SignatureResult("valid", "ma-v2", "ok", "55").replayed(7)
    assert replayed == SignatureResult(
        "replayed",
        "ma-v2",
        "nonce '55' was already used by event #7 with a different body: a captured signature "
        "is being reused, do not trust this request",
        "55",
    )


@pytest.mark.parametrize(
    ("checker", "headers", "expected"),
    [
        (
            Checker(TOKEN),
            headers_v2(ref_v2(URL, "55", TOKEN)),
            SignatureResult("valid", "v2", "v2 matches PLIVO_AUTH_TOKEN", "55"),
        ),
        (
            Checker(TOKEN, MAIN),
            headers_v2("x", **{"X-Plivo-Signature-Ma-V2": ref_v2(URL, "55", MAIN)}),
            SignatureResult("valid", "ma-v2", "ma-v2 matches PLIVO_MAIN_AUTH_TOKEN", "55"),
        ),
        (
            Checker(None),
            headers_v2("x"),
            SignatureResult(
                "unchecked",
                "v2",
                "signed (v2) but PLIVO_AUTH_TOKEN is not set: set it to check",
                "55",
            ),
        ),
        (
            Checker(TOKEN),
            CIMultiDict({"X-Plivo-Signature-Ma-V2": "x", "X-Plivo-Signature-V2-Nonce": "55"}),
            SignatureResult(
                "unchecked",
                "ma-v2",
                "signed (ma-v2) but PLIVO_MAIN_AUTH_TOKEN is not set: set it to check",
                "55",
            ),
        ),
        (
            Checker(TOKEN),
            CIMultiDict(),
            SignatureResult(
                "unsigned",
                None,
                "no X-Plivo-Signature headers: this request was not signed by Plivo",
            ),
        ),
    ],
    ids=["valid", "valid-ma", "unchecked", "unchecked-ma", "unsigned"],
)
def test_each_verdict_comes_with_its_exact_result(
    checker: Checker, headers: CIMultiDict[str], expected: SignatureResult
) -> None:
    """Verdict, scheme, the sentence the user reads, and the nonce the store keys replays on."""
    assert checker.check("POST", URL, headers, PARAMS) == expected


def test_a_lower_case_method_is_checked_as_its_upper_case() -> None:
    """aiohttp gives methods as sent: `post` is a POST, its signature checked, not refused."""
    result = Checker(TOKEN).check("post", URL, headers_v2(ref_v2(URL, "55", TOKEN)), PARAMS)
    assert (result.verdict, result.scheme) == ("valid", "v2")


def test_a_method_plivo_never_uses_is_refused_in_one_sentence() -> None:
    """A PUT is invalid under the first scheme present, and the detail says why."""
    headers = headers_v2(ref_v2(URL, "55", TOKEN), **{"X-Plivo-Signature-Ma-V2": "x"})
    assert Checker(TOKEN).check("put", URL, headers, PARAMS) == SignatureResult(
        "invalid",
        "v2",
        "Plivo sends callbacks as GET or POST, and this is a PUT: its signature is not "
        "Plivo's for this request",
    )


def test_a_mismatch_says_which_token_and_url_were_tried() -> None:
    """With nothing else to blame, the detail names the token, the URL and the nonce."""
    result = Checker(TOKEN).check("POST", URL, headers_v2(ref_v2(URL, "55", "x")), PARAMS)
    assert result == SignatureResult(
        "invalid",
        "v2",
        f"v2 does not match PLIVO_AUTH_TOKEN for {URL}: wrong token, or the URL or body "
        "changed on the way",
        "55",
    )


def test_a_mismatch_with_no_nonce_says_the_nonce_header_is_empty() -> None:
    """An absent nonce is checked as empty, and the detail points at the empty header."""
    headers = CIMultiDict({"X-Plivo-Signature-Ma-V2": ref_v2(URL, "", "x")})
    result = Checker(None, MAIN).check("POST", URL, headers, PARAMS)
    assert (result.verdict, result.nonce) == ("invalid", "")
    assert result.detail == (
        f"ma-v2 does not match PLIVO_MAIN_AUTH_TOKEN for {URL} (X-Plivo-Signature-V2-Nonce is "
        "empty): wrong token, or the URL or body changed on the way"
    )


@pytest.mark.parametrize(
    ("configured", "twin", "expected"),
    [
        (
            Checker(MAIN),
            {"X-Plivo-Signature-Ma-V2": ref_v2(URL, "55", MAIN)},
            "PLIVO_AUTH_TOKEN matches X-Plivo-Signature-Ma-V2, not X-Plivo-Signature-V2: it is "
            "the main account's token, set it as PLIVO_MAIN_AUTH_TOKEN instead",
        ),
        (
            Checker(None, TOKEN),
            {"X-Plivo-Signature-V2": ref_v2(URL, "55", TOKEN)},
            "PLIVO_MAIN_AUTH_TOKEN matches X-Plivo-Signature-V2, not X-Plivo-Signature-Ma-V2: it "
            "is the subaccount's token, set it as PLIVO_AUTH_TOKEN instead",
        ),
    ],
    ids=["main-as-auth", "auth-as-main"],
)
def test_a_token_in_the_wrong_variable_is_named_both_ways(
    configured: Checker, twin: dict[str, str], expected: str
) -> None:
    """A token that matches the other header is the other account's: the detail says which
    variable to move it to."""
    headers = CIMultiDict(
        {
            "X-Plivo-Signature-V2": "bm9wZQ==",
            "X-Plivo-Signature-Ma-V2": "bm9wZQ==",
            "X-Plivo-Signature-V2-Nonce": "55",
            **twin,
        }
    )
    result = configured.check("POST", URL, headers, PARAMS)
    assert (result.verdict, result.detail) == ("invalid", expected)


@pytest.mark.parametrize(
    ("signed_url", "received_url", "how"),
    [
        (URL + "/", URL, "with a trailing slash"),
        (URL, URL + "/", "without the trailing slash"),
        ("http://abcd.ngrok-free.app/verify/callback", URL, "with http:// instead of https://"),
        (URL, "http://abcd.ngrok-free.app/verify/callback", "with https:// instead of http://"),
        ("https://abcd.ngrok-free.app:443/verify/callback", URL, "with the port :443"),
        ("http://h.example:80/cb", "http://h.example/cb", "with the port :80"),
        ("http://h.example/cb", "http://h.example:80/cb", "without the port :80"),
        ("http://[::1]:80/cb", "http://[::1]/cb", "with the port :80"),
        ("http://[::1]/cb", "http://[::1]:80/cb", "without the port :80"),
    ],
)
def test_a_url_variant_is_named_exactly(signed_url: str, received_url: str, how: str) -> None:
    """The detail names the URL that was signed and how it differs from the one received."""
    result = Checker(TOKEN).check(
        "POST", received_url, headers_v2(ref_v2(signed_url, "55", TOKEN)), PARAMS
    )
    assert (
        result.detail
        == f"signed for {signed_url} ({how}), not {received_url}: give Plivo the exact URL"
    )


def test_a_port_that_is_not_the_default_is_not_a_variant() -> None:
    """:8443 is a real port, not a spelling of https's default: no variant is blamed."""
    signed = "https://abcd.ngrok-free.app/verify/callback"
    received = "https://abcd.ngrok-free.app:8443/verify/callback"
    result = Checker(TOKEN).check("POST", received, headers_v2(ref_v2(signed, "55", TOKEN)), PARAMS)
    assert result.detail.startswith("v2 does not match PLIVO_AUTH_TOKEN")


def test_the_local_address_is_a_variant_only_when_it_differs() -> None:
    """Signed for the local address: named as such; the public URL itself is not offered."""
    local = "http://127.0.0.1:8080/verify/callback"
    headers = headers_v2(ref_v2(local, "55", TOKEN))
    result = Checker(TOKEN).check("POST", URL, headers, PARAMS, local_url=local)
    assert result.detail == (
        f"signed for {local} (for the local address instead of the public URL), not {URL}: "
        "give Plivo the exact URL"
    )


def test_a_request_from_the_other_account_is_named() -> None:
    """V2 signed with the main token, which is configured too: the other account sent it."""
    result = Checker(TOKEN, MAIN).check("POST", URL, headers_v2(ref_v2(URL, "55", MAIN)), PARAMS)
    assert result.detail == (
        "signed with PLIVO_MAIN_AUTH_TOKEN, not PLIVO_AUTH_TOKEN: the request came from the "
        "other account"
    )


@pytest.mark.parametrize(("signed", "received"), [("POST", "GET"), ("GET", "POST")])
def test_a_v3_signature_for_the_other_method_is_named(signed: str, received: str) -> None:
    """A V3 signature made for the other method says so, in both directions (a GET signs no
    body, so the POST received here carries one)."""
    sig = ref_v3(signed, URL, PARAMS if signed == "POST" else {}, "1", TOKEN)
    result = Checker(TOKEN).check(received, URL, headers_v3(sig, "1"), PARAMS)
    assert result.detail == f"signed as a {signed} request but received as {received}"


def test_a_nonce_is_twenty_digits_and_new_each_time() -> None:
    """Senders' nonces look like Plivo's: 20 decimal digits, never the same twice."""
    nonces = {new_nonce() for _ in range(20)}
    assert len(nonces) == 20
    assert all(len(n) == 20 and n.isdigit() and n.isascii() for n in nonces)


def test_without_a_main_token_both_v2_headers_carry_the_accounts_signature() -> None:
    """A main account signs V2 and Ma-V2 with its one token."""
    headers = signed_headers("POST", URL, PARAMS, TOKEN)
    nonce = headers["X-Plivo-Signature-V2-Nonce"]
    assert headers["X-Plivo-Signature-V2"] == ref_v2(URL, nonce, TOKEN)
    assert headers["X-Plivo-Signature-Ma-V2"] == ref_v2(URL, nonce, TOKEN)


def test_with_only_a_main_token_only_ma_headers_are_signed() -> None:
    """No subaccount token: V2 is left out, Ma-V2 and the nonce are there."""
    headers = signed_headers("POST", URL, PARAMS, None, MAIN)
    nonce = headers["X-Plivo-Signature-V2-Nonce"]
    assert headers == {
        "X-Plivo-Signature-V2-Nonce": nonce,
        "X-Plivo-Signature-Ma-V2": ref_v2(URL, nonce, MAIN),
    }


def test_v3_alone_signs_only_v3_headers() -> None:
    """Asked for v3 only: V3, Ma-V3 and the V3 nonce, each V3 value over the body."""
    headers = signed_headers("POST", URL, PARAMS, TOKEN, MAIN, ("v3",))
    nonce = headers["X-Plivo-Signature-V3-Nonce"]
    assert headers == {
        "X-Plivo-Signature-V3-Nonce": nonce,
        "X-Plivo-Signature-V3": ref_v3("POST", URL, PARAMS, nonce, TOKEN),
        "X-Plivo-Signature-Ma-V3": ref_v3("POST", URL, PARAMS, nonce, MAIN),
    }


def test_signatures_in_a_header_are_split_on_commas_and_trimmed() -> None:
    """Blanks around and between comma-separated signatures are ignored; each is tried."""
    good = ref_v2(URL, "55", TOKEN)
    result = Checker(TOKEN).check("POST", URL, headers_v2(f" , bm9wZQ== ,, {good} ,"), PARAMS)
    assert result.verdict == "valid"


def test_the_64th_signature_is_still_tried() -> None:
    """The cap is 64 signatures: the 64th counts, for V2 as for V3."""
    good = ref_v2(URL, "55", TOKEN)
    header = ",".join(["AAAA"] * 63 + [good])
    assert Checker(TOKEN).check("POST", URL, headers_v2(header), PARAMS).verdict == "valid"
    late = ",".join(["AAAA"] * 64 + [good])
    assert Checker(TOKEN).check("POST", URL, headers_v2(late), PARAMS).verdict == "invalid"


def test_a_signature_that_is_not_text_is_a_mismatch_not_an_error() -> None:
    """A lone surrogate in a signature (a header byte that was not UTF-8) is just invalid."""
    for family in (headers_v2, headers_v3):
        result = Checker(TOKEN).check("POST", URL, family("\udcff,abc\udc80"), PARAMS)
        assert result.verdict == "invalid"


def test_a_url_without_a_host_is_diagnosed_without_an_error() -> None:
    """A URL with no host has no port variant; the usual mismatch sentence is given."""
    url = "http:///verify/callback"
    result = Checker(TOKEN).check("POST", url, headers_v2(ref_v2(URL, "55", "x")), PARAMS)
    assert result.detail.startswith(f"v2 does not match PLIVO_AUTH_TOKEN for {url}")
