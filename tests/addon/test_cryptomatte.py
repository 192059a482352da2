"""blender_pastiche.io.cryptomatte: the name hash Blender's Cryptomatte passes
store, and the soft coverage summed over rank pairs (no bpy)."""

from __future__ import annotations

import numpy as np
import pytest

from blender_pastiche.io import cryptomatte

# Read from the CryptoObject00 / CryptoMaterial00 layers of a Cycles render in
# bpy 5.0.1 (two cubes named "Left" and "Right" with materials "MatLeft" and
# "MatRight"); tests/blender/test_regions.py checks the same on every run.
BLENDER_IDS = {"Left": 1671811856, "Right": 2394061562, "MatLeft": 3935962920, "MatRight": 1639193858}


def test_murmurhash3_reference_values():
    # From the reference implementation's verification set (SMHasher, x86_32).
    assert cryptomatte.murmurhash3_32(b"") == 0
    assert cryptomatte.murmurhash3_32(b"", seed=1) == 0x514E28B7
    assert cryptomatte.murmurhash3_32(b"", seed=0xFFFFFFFF) == 0x81F16F39
    assert cryptomatte.murmurhash3_32(b"\xff\xff\xff\xff") == 0x76293B50
    assert cryptomatte.murmurhash3_32(b"\x21\x43\x65\x87") == 0xF55B516B
    assert cryptomatte.murmurhash3_32(b"\x21\x43\x65") == 0x7E4A8634
    assert cryptomatte.murmurhash3_32(b"\x21\x43") == 0xA0F7B07A
    assert cryptomatte.murmurhash3_32(b"\x21") == 0x72661CF4
    assert cryptomatte.murmurhash3_32(b"Hello, world!", seed=0x9747B28C) == 0x24884CBA


@pytest.mark.parametrize("name, value", sorted(BLENDER_IDS.items()))
def test_ids_match_blender_renders(name, value):
    assert cryptomatte.name_hash(name) == value
    assert cryptomatte.name_id(name).view(np.uint32) == value


def test_exponent_fix_up_keeps_ids_normal_floats():
    # A name whose raw hash has an all-zero or all-one exponent (a denormal,
    # infinity or NaN as a float) gets bit 23 flipped, as the spec says.
    for i in range(20000):
        name = f"object.{i}"
        raw = cryptomatte.murmurhash3_32(name.encode())
        if ((raw >> 23) & 0xFF) in (0, 255):
            break
    else:
        pytest.fail("no name with a degenerate exponent found")
    fixed = cryptomatte.name_hash(name)
    assert fixed == raw ^ (1 << 23)
    value = cryptomatte.name_id(name)
    assert np.isfinite(value) and abs(value) >= np.finfo(np.float32).tiny


def _layer(pairs):
    """One 1 x N x 4 layer from [(name or None, coverage), (name or None, coverage)] per pixel."""
    out = np.zeros((1, len(pairs), 4), np.float32)
    for x, ranks in enumerate(pairs):
        for r, (name, cov) in enumerate(ranks):
            out[0, x, 2 * r] = cryptomatte.name_id(name) if name else 0.0
            out[0, x, 2 * r + 1] = cov
    return out


def test_coverage_sums_every_rank_of_the_names():
    l0 = _layer([[("Left", 1.0), (None, 0.0)], [("Left", 0.6), ("Right", 0.4)],
                 [("Right", 0.7), ("Left", 0.2)]])
    l1 = _layer([[(None, 0.0), (None, 0.0)], [(None, 0.0), (None, 0.0)],
                 [("Ground", 0.05), ("Left", 0.05)]])
    np.testing.assert_allclose(cryptomatte.coverage([l0, l1], ["Left"])[0], [1.0, 0.6, 0.25], atol=1e-6)
    np.testing.assert_allclose(cryptomatte.coverage([l0, l1], ["Right"])[0], [0.0, 0.4, 0.7], atol=1e-6)
    both = cryptomatte.coverage([l0, l1], ["Left", "Right"])[0]
    np.testing.assert_allclose(both, [1.0, 1.0, 0.95], atol=1e-6)
    assert not cryptomatte.coverage([l0], []).any()


def test_coverage_refuses_layers_that_lost_their_bits():
    with pytest.raises(ValueError, match="float32"):
        cryptomatte.coverage([np.zeros((2, 2, 4), np.float16)], ["Left"])
