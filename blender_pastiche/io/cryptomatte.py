"""Cryptomatte IDs and coverage, without Blender (the Cryptomatte 1.2 spec).

A Cryptomatte layer stores, per pixel, rank pairs (id, coverage): an object's
or material's ID is a float32 made from the MurmurHash3 (32 bit, seed 0) of
its name in UTF-8, with the exponent kept away from 0 and 255 so the float is
never a denormal, an infinity or NaN. Blender writes each layer of depth 2 as
one RGBA image: R, G = (id, coverage) of rank 0, B, A of rank 1; depth 6 is
three such layers (CryptoObject00, 01, 02).

An item's soft mask is the sum of the coverages of every rank whose ID is one
of the item's: antialiased edges, motion blur and depth of field come out as
partial coverage, so regions meet without a halo or a seam.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import numpy as np


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF


def murmurhash3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32 of ``data`` (Austin Appleby's reference code)."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & 0xFFFFFFFF
    n_blocks = len(data) // 4
    for (k,) in struct.iter_unpack("<I", data[:n_blocks * 4]):
        k = (k * c1) & 0xFFFFFFFF
        k = _rotl32(k, 15)
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = _rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    tail = data[n_blocks * 4:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & 0xFFFFFFFF
        k = _rotl32(k, 15)
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h


def name_hash(name: str) -> int:
    """The 32-bit Cryptomatte hash of a name, with the spec's exponent fix-up."""
    h = murmurhash3_32(name.encode("utf-8"))
    exponent = (h >> 23) & 0xFF
    if exponent in (0, 255):
        h ^= 1 << 23
    return h


def name_id(name: str) -> np.float32:
    """The float32 a Cryptomatte pass stores for ``name`` (the hash's bits)."""
    return np.array([name_hash(name)], dtype=np.uint32).view(np.float32)[0]


def id_bits(names: Iterable[str]) -> np.ndarray:
    """The IDs of ``names`` as uint32 bit patterns (compare bits, not floats)."""
    return np.array(sorted({name_hash(n) for n in names}), dtype=np.uint32)


def coverage(layers: Sequence[np.ndarray], names: Iterable[str]) -> np.ndarray:
    """The soft mask (H x W float32, 0-1) of the items called ``names`` in
    Cryptomatte ``layers`` (each H x W x 4: two rank pairs). IDs are matched
    bit for bit, so the layers must be full 32-bit floats as rendered."""
    if not layers:
        raise ValueError("no Cryptomatte layers to read")
    wanted = id_bits(names)
    h, w = layers[0].shape[:2]
    out = np.zeros((h, w), dtype=np.float32)
    if wanted.size == 0:
        return out
    for layer in layers:
        if layer.shape != (h, w, 4) or layer.dtype != np.float32:
            raise ValueError(f"a Cryptomatte layer must be {h} x {w} x 4 float32, got "
                             f"{layer.shape} {layer.dtype}")
        bits = np.ascontiguousarray(layer).view(np.uint32)
        for rank in (0, 2):
            hit = np.isin(bits[..., rank], wanted)
            out += np.where(hit, layer[..., rank + 1], 0.0).astype(np.float32)
    return np.clip(out, 0.0, 1.0)
