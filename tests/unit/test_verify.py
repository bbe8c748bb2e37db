"""Tests for verify/: known answers, rotation, tolerance, every malformed header, properties."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verify
from ttma_relay.settings import ENV_WEBHOOK_SECRET, MIN_SECRET_LENGTH, IngestSettings
from verify import (
    DEFAULT_TOLERANCE_SECONDS,
    MAX_HEADER_LENGTH,
    MalformedSignatureError,
    MissingSignatureError,
    NoSecretsConfiguredError,
    SignatureError,
    SignatureMismatchError,
    TimestampOutsideToleranceError,
    VerifiedSignature,
    compute_signature,
    key_fingerprint,
    sign,
)

SECRET = "whsec_test_0123456789abcdef"  # noqa: S105  the verify tests' secret, not a credential
PREVIOUS = "whsec_previous_fedcba9876543210"
OTHER = "whsec_other_number_5555555555"
BODY = b'{"a":1}'
T = 1716648912

# Computed once, independently of this code:
#   printf '%s' '1716648912.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_test_0123456789abcdef'
KNOWN_HEX = "0795e93472b589f908b9f6a71b335d3219c88a52e7bea579ddb9a741600dbf3a"
#   printf '%s' '1716648912.' | openssl dgst -sha256 -hmac 'whsec_test_0123456789abcdef'
KNOWN_HEX_EMPTY_BODY = "ecc783f12ce4695bd0aa58e1f1aacc7a944df919660c77f65be1a8fed1d69205"
#   printf '%s' '1716648912.{"a":1}' | openssl dgst -sha256 -hmac 'whsec_previous_fedcba9876543210'
KNOWN_HEX_PREVIOUS = "bea13b45bffc0c14ec5013e5e26a31d9224d344025ad3358b8f9b06cf1b32367"

HEX = KNOWN_HEX
RING = [SECRET, PREVIOUS]

FAST = settings(max_examples=150, deadline=None)


def check(header: object, *, secrets: list[str | bytes] = RING, body: bytes = BODY, **kw):
    return verify.verify(body, header, secrets, now=kw.pop("now", T), **kw)  # type: ignore[arg-type]


def independent_hmac(secret: str, body: bytes, t: int) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


# --- signing -------------------------------------------------------------------------------------


def test_known_answer_vectors():
    assert compute_signature(SECRET, BODY, T) == KNOWN_HEX == independent_hmac(SECRET, BODY, T)
    assert compute_signature(SECRET, b"", T) == KNOWN_HEX_EMPTY_BODY
    assert compute_signature(PREVIOUS, BODY, T) == KNOWN_HEX_PREVIOUS
    assert compute_signature(SECRET.encode(), BODY, T) == KNOWN_HEX  # bytes secret, same key
    assert sign(SECRET, BODY, timestamp=T) == f"t={T},v1={KNOWN_HEX}"


def test_key_fingerprint_is_short_stable_and_not_the_secret():
    expected = hashlib.sha256(b"ttma-key-id:" + SECRET.encode()).hexdigest()[:8]
    assert key_fingerprint(SECRET) == key_fingerprint(SECRET.encode()) == expected
    assert key_fingerprint(SECRET) != key_fingerprint(PREVIOUS)
    for secret in (SECRET, PREVIOUS, OTHER):
        key_id = key_fingerprint(secret)
        assert key_id not in secret and secret not in key_id
        assert key_id not in compute_signature(secret, BODY, T)  # not a prefix of the HMAC either


@pytest.mark.parametrize("timestamp", [-1, 10**10, True, 1.5, "1716648912"])
def test_sign_rejects_bad_timestamps(timestamp):
    with pytest.raises((TypeError, ValueError)):
        sign(SECRET, BODY, timestamp=timestamp)


def test_sign_rejects_str_body():
    with pytest.raises(TypeError):
        sign(SECRET, BODY.decode(), timestamp=T)  # type: ignore[arg-type]


# --- verifying -----------------------------------------------------------------------------------


def test_round_trip():
    result = check(sign(SECRET, BODY, timestamp=T))
    assert result == VerifiedSignature(timestamp=T, key_index=0, key_id=key_fingerprint(SECRET))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.key_index = 1  # type: ignore[misc]


def test_round_trip_with_the_real_clock():
    now = int(time.time())
    assert verify.verify(BODY, sign(SECRET, BODY, timestamp=now), [SECRET]).timestamp == now


def test_bytearray_body_and_bytes_secrets_are_accepted():
    result = check(f"t={T},v1={HEX}", body=bytearray(BODY), secrets=[SECRET.encode()])
    assert result.key_index == 0


def test_uppercase_hex_is_the_same_signature():
    assert check(f"t={T},v1={HEX.upper()}").key_index == 0


def test_rotation_previous_secret_matches_with_its_index():
    result = check(f"t={T},v1={KNOWN_HEX_PREVIOUS}")
    assert (result.key_index, result.key_id) == (1, key_fingerprint(PREVIOUS))


def test_keyring_may_hold_more_than_two_secrets():
    header = sign(OTHER, BODY, timestamp=T)
    assert check(header, secrets=[SECRET, PREVIOUS, OTHER]).key_index == 2


def test_secret_not_in_the_ring_fails():
    with pytest.raises(SignatureMismatchError) as info:
        check(sign(OTHER, BODY, timestamp=T))
    assert info.value.reason == "signature_mismatch"


def test_any_listed_v1_may_match():
    wrong = compute_signature(OTHER, BODY, T)
    assert check(f"t={T},v1={wrong},v1={HEX}").key_index == 0
    assert check(f"t={T},v1={HEX},v1={wrong}").key_index == 0
    assert check(f"t={T},v1={wrong},v1={KNOWN_HEX_PREVIOUS}").key_index == 1


def test_first_secret_in_the_ring_wins_when_several_match():
    header = f"t={T},v1={KNOWN_HEX_PREVIOUS},v1={HEX}"
    assert check(header).key_index == 0


def test_unknown_keys_are_ignored():
    assert check(f"v0=whatever,t={T},x=1,v1={HEX},v2=zz==").key_index == 0


def test_v0_alone_is_not_a_signature():
    with pytest.raises(MalformedSignatureError) as info:
        check(f"t={T},v0={HEX}")
    assert info.value.reason == "no_signature"


@pytest.mark.parametrize(
    ("now", "reason"),
    [
        (T + DEFAULT_TOLERANCE_SECONDS, None),
        (T + DEFAULT_TOLERANCE_SECONDS + 1, "stale_timestamp"),
        (T + DEFAULT_TOLERANCE_SECONDS + 0.001, "stale_timestamp"),
        (T - DEFAULT_TOLERANCE_SECONDS, None),
        (T - DEFAULT_TOLERANCE_SECONDS - 1, "future_timestamp"),
        (T - DEFAULT_TOLERANCE_SECONDS - 0.001, "future_timestamp"),
        (T + 0.999, None),
    ],
)
def test_tolerance_both_directions(now, reason):
    header = f"t={T},v1={HEX}"
    if reason is None:
        assert check(header, now=now).timestamp == T
        return
    with pytest.raises(TimestampOutsideToleranceError) as info:
        check(header, now=now)
    assert info.value.reason == reason


def test_custom_tolerance():
    header = f"t={T},v1={HEX}"
    assert check(header, now=T + 10, tolerance=10).timestamp == T
    assert check(header, now=T - 10, tolerance=10).timestamp == T
    with pytest.raises(TimestampOutsideToleranceError):
        check(header, now=T + 11, tolerance=10)
    with pytest.raises(TimestampOutsideToleranceError):
        check(header, now=T - 11, tolerance=10)
    assert check(header, now=T, tolerance=0).timestamp == T
    assert check(header, now=T + 3600, tolerance=3600).timestamp == T


def test_stale_and_wrong_is_reported_as_stale():
    with pytest.raises(TimestampOutsideToleranceError):
        check(f"t={T},v1={'0' * 64}", now=T + 10_000)


# --- caller bugs are not SignatureErrors ---------------------------------------------------------


def test_str_body_is_a_type_error():
    with pytest.raises(TypeError):
        verify.verify(BODY.decode(), f"t={T},v1={HEX}", RING, now=T)  # type: ignore[arg-type]


@pytest.mark.parametrize("secrets", [SECRET, SECRET.encode()])
def test_single_secret_instead_of_a_keyring_is_a_type_error(secrets):
    with pytest.raises(TypeError):
        verify.verify(BODY, f"t={T},v1={HEX}", secrets, now=T)


@pytest.mark.parametrize("secrets", [[], (), [""], [SECRET, b""]])
def test_empty_keyring_or_secret_is_a_configuration_error(secrets):
    with pytest.raises(NoSecretsConfiguredError) as info:
        verify.verify(BODY, None, secrets, now=T)  # config error wins over a missing header
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, SignatureError)


def test_negative_tolerance_is_a_value_error():
    with pytest.raises(ValueError, match="tolerance"):
        check(f"t={T},v1={HEX}", tolerance=-1)


# --- every malformed header ----------------------------------------------------------------------

V = f"v1={HEX}"


def in_digits(zero: int) -> str:
    """T written with another script's digits, e.g. 0xFF10 for fullwidth."""
    return "".join(chr(zero + int(d)) for d in str(T))


MALFORMED: list[tuple[str, object, type[SignatureError], str]] = [
    ("none", None, MissingSignatureError, "missing_header"),
    ("empty", "", MissingSignatureError, "missing_header"),
    ("bytes", f"t={T},{V}".encode(), MalformedSignatureError, "not_text"),
    ("int", 1716648912, MalformedSignatureError, "not_text"),
    (
        "too_long",
        f"t={T},{V}," + "x=" + "a" * MAX_HEADER_LENGTH,
        MalformedSignatureError,
        "header_too_long",
    ),
    ("megabyte", "t=" + "9" * 1_000_000, MalformedSignatureError, "header_too_long"),
    ("non_ascii_suffix", f"t={T},{V}é", MalformedSignatureError, "non_ascii"),
    # int() accepts these digit forms, so the ASCII check is what rejects them:
    ("arabic_digits", f"t={in_digits(0x0660)},{V}", MalformedSignatureError, "non_ascii"),
    ("fullwidth_digits", f"t={in_digits(0xFF10)},{V}", MalformedSignatureError, "non_ascii"),
    ("emoji", "🔑", MalformedSignatureError, "non_ascii"),
    ("space_in_t", f"t= {T},{V}", MalformedSignatureError, "whitespace"),
    ("space_after_comma", f"t={T}, {V}", MalformedSignatureError, "whitespace"),
    ("leading_space", f" t={T},{V}", MalformedSignatureError, "whitespace"),
    ("trailing_newline", f"t={T},{V}\n", MalformedSignatureError, "whitespace"),
    ("tab", f"t={T},\t{V}", MalformedSignatureError, "whitespace"),
    ("nul", f"t={T},{V}\x00", MalformedSignatureError, "whitespace"),
    ("del", f"t={T},{V}\x7f", MalformedSignatureError, "whitespace"),
    ("only_space", " ", MalformedSignatureError, "whitespace"),
    ("commas", ",,,", MalformedSignatureError, "empty_part"),
    ("empty_middle", f"t={T},,{V}", MalformedSignatureError, "empty_part"),
    ("trailing_comma", f"t={T},{V},", MalformedSignatureError, "empty_part"),
    ("leading_comma", f",t={T},{V}", MalformedSignatureError, "empty_part"),
    ("no_equals", f"t={T},{V},junk", MalformedSignatureError, "part_without_equals"),
    ("bare_word", "signature", MalformedSignatureError, "part_without_equals"),
    ("equals_only", "=", MalformedSignatureError, "empty_key"),
    ("empty_key", f"=1,t={T},{V}", MalformedSignatureError, "empty_key"),
    ("no_t", V, MalformedSignatureError, "no_timestamp"),
    ("uppercase_T", f"T={T},{V}", MalformedSignatureError, "no_timestamp"),
    ("v1_empty_no_t", "v1=", MalformedSignatureError, "no_timestamp"),
    ("duplicate_t", f"t=1,t=2,{V}", MalformedSignatureError, "duplicate_timestamp"),
    ("duplicate_same_t", f"t={T},t={T},{V}", MalformedSignatureError, "duplicate_timestamp"),
    ("t_empty", "t=", MalformedSignatureError, "timestamp_not_integer"),
    ("t_word", f"t=abc,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_float", f"t={T}.5,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_exponent", f"t=1e9,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_plus", f"t=+{T},{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_minus_only", f"t=-,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_hex", f"t=0x10,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_underscore", f"t=1_716_648_912,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_equals", f"t={T}=,{V}", MalformedSignatureError, "timestamp_not_integer"),
    ("t_negative", f"t=-1,{V}", MalformedSignatureError, "timestamp_out_of_range"),
    ("t_eleven_digits", f"t=17166489120,{V}", MalformedSignatureError, "timestamp_out_of_range"),
    ("t_leading_zeros", f"t=0{T},{V}", MalformedSignatureError, "timestamp_out_of_range"),
    ("t_huge", f"t={'9' * 4000},{V}", MalformedSignatureError, "timestamp_out_of_range"),
    ("no_v1", f"t={T}", MalformedSignatureError, "no_signature"),
    ("uppercase_V1", f"t={T},V1={HEX}", MalformedSignatureError, "no_signature"),
    ("v1_odd", f"t={T},v1=abc", MalformedSignatureError, "signature_odd_length"),
    ("v1_odd_63", f"t={T},v1={HEX[:63]}", MalformedSignatureError, "signature_odd_length"),
    ("v1_non_hex", f"t={T},v1={'z' * 64}", MalformedSignatureError, "signature_not_hex"),
    ("v1_0x", f"t={T},v1=0x{HEX[:62]}", MalformedSignatureError, "signature_not_hex"),
    ("v1_equals", f"t={T},v1={HEX}=", MalformedSignatureError, "signature_not_hex"),
    ("v1_second_bad", f"t={T},{V},v1=nothex", MalformedSignatureError, "signature_not_hex"),
    ("v1_empty", f"t={T},v1=", MalformedSignatureError, "signature_wrong_length"),
    ("v1_short", f"t={T},v1={HEX[:62]}", MalformedSignatureError, "signature_wrong_length"),
    ("v1_long", f"t={T},v1={HEX}00", MalformedSignatureError, "signature_wrong_length"),
    ("t_eq_only", "t=,v1=", MalformedSignatureError, "timestamp_not_integer"),
]


@pytest.mark.parametrize(
    ("header", "error", "reason"), [case[1:] for case in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_headers_raise_their_specific_error(header, error, reason):
    with pytest.raises(SignatureError) as info:
        check(header)
    assert type(info.value) is error
    assert info.value.reason == reason
    message = str(info.value)
    assert message == info.value.message
    for secret_thing in (SECRET, PREVIOUS, HEX, KNOWN_HEX_PREVIOUS, BODY.decode()):
        assert secret_thing not in message


def collect_errors() -> list[SignatureError]:
    errors: list[SignatureError] = []
    attempts = [case[1] for case in MALFORMED] + [
        f"t={T},v1={'0' * 64}",  # mismatch
    ]
    for header in attempts:
        try:
            check(header)
        except SignatureError as exc:
            errors.append(exc)
    for now in (T + 10_000, T - 10_000):
        try:
            check(f"t={T},{V}", now=now)
        except SignatureError as exc:
            errors.append(exc)
    return errors


def test_each_cause_has_its_own_stable_message():
    by_reason: dict[str, set[str]] = {}
    for exc in collect_errors():
        by_reason.setdefault(exc.reason, set()).add(str(exc))
    assert all(len(messages) == 1 for messages in by_reason.values()), by_reason  # stable
    messages = [next(iter(m)) for m in by_reason.values()]
    assert len(set(messages)) == len(messages)  # distinct across causes
    assert set(by_reason) == {
        "missing_header", "not_text", "header_too_long", "non_ascii", "whitespace",
        "empty_part", "part_without_equals", "empty_key", "no_timestamp", "duplicate_timestamp",
        "timestamp_not_integer", "timestamp_out_of_range", "no_signature", "signature_odd_length",
        "signature_not_hex", "signature_wrong_length", "stale_timestamp", "future_timestamp",
        "signature_mismatch",
    }  # fmt: skip


def test_public_surface():
    assert set(verify.__all__) >= {
        "DEFAULT_TOLERANCE_SECONDS", "MAX_HEADER_LENGTH", "sign", "compute_signature", "verify",
        "VerifiedSignature", "key_fingerprint", "SignatureError", "MissingSignatureError",
        "MalformedSignatureError", "TimestampOutsideToleranceError", "SignatureMismatchError",
        "NoSecretsConfiguredError",
    }  # fmt: skip
    assert DEFAULT_TOLERANCE_SECONDS == 300
    for name in verify.__all__:
        assert hasattr(verify, name)


# --- keys HMAC cannot tell apart ----------------------------------------------------------------

BLOCK_BYTES = 64  # SHA-256's block: HMAC hashes longer keys, then zero-pads to this size


def hmac_key_block(secret: str | bytes) -> bytes:
    """The key block HMAC-SHA256 actually uses for ``secret`` (RFC 2104, section 2)."""
    key = secret.encode() if isinstance(secret, str) else secret
    if len(key) > BLOCK_BYTES:
        key = hashlib.sha256(key).digest()
    return key.ljust(BLOCK_BYTES, b"\x00")


def test_hmac_cannot_tell_zero_padded_or_prehashed_keys_apart():
    """Why the keyring's properties draw real secrets: outside that domain two distinct
    secrets can be one HMAC key, and the keyring then reports the first that matches."""
    assert compute_signature(b"\x00", BODY, T) == compute_signature(b"\x00\x00", BODY, T)
    assert compute_signature(SECRET, BODY, T) == compute_signature(SECRET + "\x00", BODY, T)
    long_key = b"k" * (BLOCK_BYTES + 1)
    assert compute_signature(long_key, BODY, T) == compute_signature(
        hashlib.sha256(long_key).digest(), BODY, T
    )
    assert (
        check(sign(b"\x00\x00", BODY, timestamp=T), secrets=[b"\x00", b"\x00\x00"]).key_index == 0
    )


# Real secrets (>= 32 characters) that differ only in their last characters, around the 64-byte
# block where HMAC starts hashing the key.
BASE_SECRET = "whsec_" + "0123456789abcdef" * 2  # 38 characters
NEAR_TWINS = [
    BASE_SECRET,
    BASE_SECRET + "0",
    BASE_SECRET + "1",
    BASE_SECRET[:-1],
    BASE_SECRET[:-1] + "g",
    BASE_SECRET + "0" * (BLOCK_BYTES - len(BASE_SECRET)),  # exactly one block
    BASE_SECRET + "0" * (BLOCK_BYTES - len(BASE_SECRET) + 1),  # one byte over: hashed
    BASE_SECRET + "0" * (BLOCK_BYTES - len(BASE_SECRET) + 2),
]


@pytest.mark.parametrize("order", ["as_listed", "reversed"])
def test_keyring_reports_the_index_of_secrets_that_differ_only_at_the_end(order):
    ring = NEAR_TWINS if order == "as_listed" else NEAR_TWINS[::-1]
    env = {"GOOGLE_CLOUD_PROJECT": "p", ENV_WEBHOOK_SECRET: ",".join(ring)}
    assert IngestSettings.from_env(env).webhook_secrets == tuple(ring)  # a real keyring
    for index, secret in enumerate(ring):
        result = check(sign(secret, BODY, timestamp=T), secrets=ring)
        assert (result.key_index, result.key_id) == (index, key_fingerprint(secret)), secret


# --- properties ----------------------------------------------------------------------------------
# Secrets come from the real domain: what IngestSettings accepts as a keyring entry (at least
# MIN_SECRET_LENGTH characters; no comma, which separates them; no whitespace, which it strips;
# no control character: an environment variable cannot hold NUL, so no two secrets are one HMAC
# key by zero padding). Up to 100 characters: keys past the 64-byte block are hashed.

secret_characters = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Z"), exclude_characters=","
)
secrets_st = st.text(secret_characters, min_size=MIN_SECRET_LENGTH, max_size=100)
keyrings = st.lists(secrets_st, min_size=1, max_size=6, unique=True)
bodies = st.binary(max_size=2048)
timestamps = st.integers(min_value=0, max_value=10**10 - 1)


@FAST
@given(ring=keyrings)
def test_property_drawn_keyrings_are_keyrings_the_settings_accept(ring):
    env = {"GOOGLE_CLOUD_PROJECT": "p", ENV_WEBHOOK_SECRET: ",".join(ring)}
    assert IngestSettings.from_env(env).webhook_secrets == tuple(ring)
    assert len({hmac_key_block(secret) for secret in ring}) == len(ring)


@FAST
@given(secret=secrets_st, body=bodies, t=timestamps)
def test_property_sign_then_verify_round_trips(secret, body, t):
    result = verify.verify(body, sign(secret, body, timestamp=t), [secret], now=t)
    assert result == VerifiedSignature(t, 0, key_fingerprint(secret))


@FAST
@given(ring=keyrings, data=st.data())
def test_property_keyring_reports_the_index_of_the_signing_secret(ring, data):
    index = data.draw(st.integers(0, len(ring) - 1))
    result = verify.verify(BODY, sign(ring[index], BODY, timestamp=T), ring, now=T)
    assert result.key_index == index
    assert result.key_id == key_fingerprint(ring[index])


@FAST
@given(body=st.binary(min_size=1, max_size=512), data=st.data())
def test_property_flipping_any_body_byte_fails(body, data):
    header = sign(SECRET, body, timestamp=T)
    i = data.draw(st.integers(0, len(body) - 1))
    bit = data.draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]))
    tampered = body[:i] + bytes([body[i] ^ bit]) + body[i + 1 :]
    with pytest.raises(SignatureMismatchError):
        verify.verify(tampered, header, RING, now=T)


@FAST
@given(body=bodies, extra=st.binary(min_size=1, max_size=64))
def test_property_appending_to_the_body_fails(body, extra):
    header = sign(SECRET, body, timestamp=T)
    with pytest.raises(SignatureMismatchError):
        verify.verify(body + extra, header, RING, now=T)


@FAST
@given(
    body=bodies,
    delta=st.integers(-DEFAULT_TOLERANCE_SECONDS, DEFAULT_TOLERANCE_SECONDS).filter(bool),
)
def test_property_changing_the_timestamp_fails(body, delta):
    v1 = compute_signature(SECRET, body, T)
    with pytest.raises(SignatureMismatchError):
        verify.verify(body, f"t={T + delta},v1={v1}", RING, now=T)


@FAST
@given(body=bodies, data=st.data())
def test_property_changing_any_signature_digit_fails(body, data):
    v1 = compute_signature(SECRET, body, T)
    i = data.draw(st.integers(0, len(v1) - 1))
    digit = data.draw(
        st.sampled_from([d for d in "0123456789abcdefABCDEF" if int(d, 16) != int(v1[i], 16)])
    )
    with pytest.raises(SignatureMismatchError):
        verify.verify(body, f"t={T},v1={v1[:i]}{digit}{v1[i + 1 :]}", RING, now=T)


@FAST
@given(header=st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1"))))
def test_property_arbitrary_header_text_raises_only_signature_errors(header):
    with pytest.raises(SignatureError):
        verify.verify(BODY, header, RING, now=T)


header_parts = st.one_of(
    st.builds(
        "{}={}".format, st.sampled_from(["t", "v1", "v0", "", "T", "x"]), st.text(max_size=70)
    ),
    st.sampled_from(["", "=", "t", "v1", f"t={T}", V, "t=-1", "t=99999999999", f"v1={HEX[:63]}"]),
    st.text(max_size=10),
)


@FAST
@given(parts=st.lists(header_parts, max_size=6), body=bodies)
def test_property_header_like_inputs_raise_only_signature_errors(parts, body):
    header = ",".join(parts)
    try:
        verify.verify(body, header, RING, now=T)
    except SignatureError as exc:
        assert SECRET not in str(exc) and HEX not in str(exc)
    else:  # only a genuinely valid header may pass
        assert body == BODY and f"t={T}" in parts and V in parts


@FAST
@given(secret=secrets_st, body=st.binary(min_size=16, max_size=256))
def test_property_secrets_and_bodies_never_leak(secret, body):
    key_id = key_fingerprint(secret)
    assert len(key_id) == 8 and key_id != secret and secret not in key_id
    header = sign(secret, body, timestamp=T)
    near_twins = (sign(secret + "x", body, timestamp=T), sign(secret[:-1], body, timestamp=T))
    for bad in (header + "x", header.replace("t=", "t=x"), *near_twins):
        with pytest.raises(SignatureError) as info:
            verify.verify(body, bad, [secret], now=T)
        message = str(info.value)
        assert secret not in message
        assert compute_signature(secret, body, T) not in message
        assert body.decode("latin-1") not in message
