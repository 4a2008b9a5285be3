from __future__ import annotations

import hashlib

import pytest

from orchestration.activation.hashing import hash_identifier, normalise_identifier

MARY_EMAIL_SHA256 = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
META_PHONE_SHA256 = "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_meta_email_vector_from_the_customer_file_guide():
    assert hash_identifier("email", "mary@example.com", "meta") == MARY_EMAIL_SHA256


def test_meta_email_is_trimmed_and_lowercased_before_hashing():
    assert hash_identifier("email", "  Mary@Example.COM \n", "meta") == MARY_EMAIL_SHA256


def test_meta_phone_vector_keeps_digits_only_without_plus():
    assert normalise_identifier("phone", "+1 (555) 987-6543", "meta") == "15559876543"
    assert hash_identifier("phone", "+1 (555) 987-6543", "meta") == META_PHONE_SHA256


def test_meta_phone_drops_the_international_call_prefix_zeros():
    assert normalise_identifier("phone", "0015559876543", "meta") == "15559876543"
    assert hash_identifier("phone", "00 1 555 987 6543", "meta") == META_PHONE_SHA256


def test_google_phone_is_e164_with_plus():
    assert normalise_identifier("phone", "+1 (555) 987-6543", "google") == "+15559876543"
    assert hash_identifier("phone", "+15559876543", "google") == sha256("+15559876543")


def test_google_gmail_address_loses_dots_and_plus_suffix():
    email = "cloudy.sanfrancisco+shopping@gmail.com"
    assert normalise_identifier("email", email, "google") == "cloudysanfrancisco@gmail.com"
    assert hash_identifier("email", email, "google") == sha256("cloudysanfrancisco@gmail.com")


def test_google_googlemail_address_is_treated_like_gmail():
    email = " Cloudy.SanFrancisco+Shopping@GoogleMail.com "
    assert normalise_identifier("email", email, "google") == "cloudysanfrancisco@googlemail.com"


def test_google_non_gmail_address_keeps_dots_and_plus():
    email = "Cloudy.SanFrancisco+Shopping@Example.com"
    assert (
        normalise_identifier("email", email, "google") == "cloudy.sanfrancisco+shopping@example.com"
    )
    assert hash_identifier("email", email, "google") == sha256(
        "cloudy.sanfrancisco+shopping@example.com"
    )


def test_meta_keeps_gmail_dots_that_google_removes():
    assert hash_identifier("email", "mary.jane@gmail.com", "meta") == sha256("mary.jane@gmail.com")
    assert hash_identifier("email", "mary.jane@gmail.com", "google") == sha256("maryjane@gmail.com")


@pytest.mark.parametrize("normaliser", ["meta", "google"])
def test_an_already_hashed_value_is_passed_through_lowercased_not_hashed_again(normaliser):
    for kind in ("email", "phone", "first_name", "zip", "external_id"):
        assert hash_identifier(kind, MARY_EMAIL_SHA256.upper(), normaliser) == MARY_EMAIL_SHA256
        assert hash_identifier(kind, f" {META_PHONE_SHA256} ", normaliser) == META_PHONE_SHA256


def test_hashing_twice_gives_the_same_digest_as_hashing_once():
    once = hash_identifier("email", "mary@example.com", "google")
    assert hash_identifier("email", once, "google") == once


@pytest.mark.parametrize("normaliser", ["meta", "google"])
@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("email", None),
        ("email", "   "),
        ("phone", "n/a"),
        ("phone", "000"),
        ("first_name", "  "),
        ("country", "United States"),
        ("gender", "unknown"),
        ("external_id", ""),
    ],
)
def test_nothing_left_after_normalisation_gives_none(normaliser, kind, value):
    assert hash_identifier(kind, value, normaliser) is None


def test_meta_names_are_lowercase_letters_without_punctuation_and_keep_utf8_letters():
    assert normalise_identifier("first_name", " Mary-Ann ", "meta") == "maryann"
    assert normalise_identifier("last_name", "O'Brien", "meta") == "obrien"
    assert normalise_identifier("last_name", "Müller", "meta") == "müller"
    assert hash_identifier("last_name", "Müller", "meta") == sha256("müller")


def test_meta_names_in_decomposed_unicode_hash_like_composed_ones():
    decomposed = "Mu\u0308ller"
    assert hash_identifier("last_name", decomposed, "meta") == sha256("müller")


def test_google_names_are_lowercase_without_a_title_prefix():
    assert normalise_identifier("first_name", "  Mrs. Jane ", "google") == "jane"
    assert normalise_identifier("last_name", "Dr Smith", "google") == "smith"
    assert normalise_identifier("first_name", "Mary  Ann", "google") == "mary ann"


def test_us_zip_keeps_first_five_digits_and_other_postcodes_lose_spaces():
    assert normalise_identifier("zip", "94045-1234", "meta") == "94045"
    assert normalise_identifier("zip", "SW1A 1AA", "meta") == "sw1a1aa"


def test_country_is_a_lowercase_two_letter_code():
    assert normalise_identifier("country", " US ", "meta") == "us"
    assert hash_identifier("country", "GB", "meta") == sha256("gb")


def test_gender_is_m_or_f():
    assert normalise_identifier("gender", "Female", "meta") == "f"
    assert normalise_identifier("gender", "M", "meta") == "m"


def test_external_id_keeps_its_case():
    assert hash_identifier("external_id", " Cust-0042 ", "meta") == sha256("Cust-0042")


def test_an_unknown_normaliser_or_kind_is_refused():
    with pytest.raises(ValueError, match="normaliser"):
        hash_identifier("email", "mary@example.com", "tiktok")
    with pytest.raises(ValueError, match="kind"):
        hash_identifier("shoe_size", "42", "meta")
