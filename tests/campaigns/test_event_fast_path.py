"""POST /events accepts a plainly valid body without DRF's serializer (campaigns.api,
`well_formed_event`): whatever it accepts must be exactly what the serializer returns, and it
must leave everything else (every error) to the serializer."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.api import EventInputSerializer, well_formed_event

TEXTS = st.one_of(
    st.sampled_from(["A1", "drinks", "store-12", "u-1001", "上海店", "", " padded ", "x" * 65]),
    st.text(max_size=70),
    st.integers(-5, 5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.booleans(),
)
MONEY = st.one_of(
    st.sampled_from(
        ["128.50", "0", "0.5", "00.00", "1.005", "-1.00", " 12.00", "1e3", "NaN", "12.", ".5"]
    ),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=2, min_value=-10, max_value=10**13
    ).map(str),
    st.integers(-3, 10**15),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
)
ITEM = st.dictionaries(
    st.sampled_from(["sku", "category", "quantity", "amount", "excluded", "other"]),
    st.one_of(TEXTS, MONEY, st.integers(-2, 10**20)),
    max_size=6,
) | st.one_of(st.none(), st.integers(), st.text(max_size=3))
FIELDS = {
    "type": st.one_of(st.sampled_from(["purchase", "check_in", "review"]), TEXTS),
    "member": st.one_of(st.sampled_from(["u-1001", "b2-17"]), TEXTS),
    "reference": st.one_of(st.sampled_from(["order-778", ""]), TEXTS),
    "occurred_at": st.sampled_from(["2026-11-25T10:00:00+08:00", "yesterday"]),
    "amount": MONEY,
    "currency": st.one_of(st.sampled_from(["CNY", "usd", "EURO", ""]), TEXTS),
    "channel": st.one_of(st.sampled_from(["pos", "online", "app", "", "fax", "POS"]), TEXTS),
    "store": TEXTS,
    "items": st.one_of(st.lists(ITEM, max_size=3), TEXTS),
    "paid_with_points": MONEY,
    "attributes": st.one_of(
        st.dictionaries(st.text(max_size=5), st.one_of(TEXTS, st.lists(st.integers()))), TEXTS
    ),
    "unknown": TEXTS,
}


VALID_ITEM = st.fixed_dictionaries(
    {"amount": st.sampled_from(["56.00", "0.5", "3"])},
    optional={
        "sku": st.sampled_from(["A1", "", "货号-9"]),
        "category": st.sampled_from(["drinks", " food "]),
        "quantity": st.integers(0, 5),
        "excluded": st.booleans(),
    },
)
VALID = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["purchase", "check_in"]),
        "member": st.sampled_from(["u-1001", "会员-8"]),
        "reference": st.sampled_from(["order-778", "r"]),
        "amount": st.sampled_from(["256.00", "10", "0.99", "999999999999.99"]),
    },
    optional={
        "currency": st.just("CNY"),
        "channel": st.sampled_from(["pos", "online", "app", ""]),
        "store": st.sampled_from(["store-12", ""]),
        "items": st.lists(VALID_ITEM, max_size=3),
        "paid_with_points": st.sampled_from(["0", "5.00", "0.99"]),
        "attributes": st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    },
)


@st.composite
def bodies(draw):
    """A valid body with a few fields removed or replaced by anything (valid or not)."""
    body = draw(VALID)
    for name in draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=3)):
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(FIELDS[name])
    # JSON in, as the parser gives it to the view.
    return json.loads(json.dumps(body, default=str))


def _plain(value):
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return str(value)  # 7.5 and 7.50 are equal Decimals but not the same amount text
    return value


def _same_as_serializer(body) -> bool:
    fast = well_formed_event(body)
    serializer = EventInputSerializer(data=body)
    valid = serializer.is_valid()
    if fast is None:
        return False
    assert valid, (body, serializer.errors)
    assert _plain(fast) == _plain(serializer.validated_data)
    # Same types too (a Decimal is not an int, a str not a number).
    for name, value in serializer.validated_data.items():
        assert type(fast[name]) is type(value), name
    return True


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_whatever_the_fast_path_accepts_equals_the_serializers_result(body):
    _same_as_serializer(body)


@pytest.mark.parametrize(
    "body",
    [
        # The body every POS sends (and B2 posts).
        {
            "type": "purchase",
            "member": "b2-17",
            "reference": "r-1",
            "amount": "128.50",
            "currency": "CNY",
            "channel": "pos",
            "store": "store-12",
            "items": [{"sku": "A1", "category": "drinks", "quantity": 2, "amount": "128.50"}],
        },
        {"type": "check_in", "member": "u-1"},
        {
            "type": "purchase",
            "member": "上海-7",
            "reference": " order-778 ",
            "amount": "5",
            "paid_with_points": "5.00",
            "items": [{"amount": "0.5", "excluded": True}],
            "attributes": {"coupon": None},
        },
    ],
)
def test_the_common_bodies_take_the_fast_path(body):
    assert _same_as_serializer(body)


@pytest.mark.parametrize(
    "body",
    [
        {"type": "purchase", "member": "u-1", "reference": "r", "amount": 128.5},
        {"type": "purchase", "member": "u-1", "amount": "1.00"},
        {"type": "purchase", "member": "u-1", "reference": "r", "amount": "1", "currency": "C"},
        {"type": "purchase", "member": "u-1", "reference": "r", "amount": "1.001"},
        {"type": "check_in", "member": None},
        {"type": "check_in", "member": "u-1", "channel": "fax"},
        {"type": "check_in", "member": "u-1", "items": [{"sku": "A"}]},
        {"type": "check_in", "member": "u-1", "occurred_at": "2026-11-25T10:00:00+08:00"},
        {
            "type": "purchase",
            "member": "u-1",
            "reference": "r",
            "amount": "1.00",
            "paid_with_points": "2.00",
        },
    ],
)
def test_anything_unusual_is_left_to_the_serializer(body):
    assert well_formed_event(body) is None


def test_amounts_are_quantized_like_the_serializer():
    body = {"type": "purchase", "member": "u", "reference": "r", "amount": "7.5"}
    assert well_formed_event(body)["amount"] == Decimal("7.50")
    assert str(well_formed_event(body)["amount"]) == "7.50"
