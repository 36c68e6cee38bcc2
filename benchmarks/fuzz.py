"""Fuzz the stream parser, the metadata chunks, the stream inspector and the entropy decoders
with mutated streams (hypothesis).

    python benchmarks/fuzz.py [--examples 100000]

Seeds are valid streams of every method (fixed-length, static prior, context prior, adaptive), with and
without metadata chunks and colour side information (container v2), from a small random-weight
model with a fitted prior. A stream that decodes also gets its colour corrections applied.
Hypothesis mutates them (bit flips, byte overwrites, truncation, insertion, appended bytes), and
half the time re-computes the CRC32 so the mutation reaches the chunk parser and the entropy
decoder. Every input must inspect and decode to a valid index grid or raise BitstreamError,
within a time bound; anything else is a failure. Prints counts per outcome, the slowest input,
the peak traced memory and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import struct
import time
import tracemalloc
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cod_lite
from cod_lite import bitstream, colour
from cod_lite.codec import Codec
from cod_lite.entropy.coding import METHOD_ADAPTIVE, METHOD_CONTEXT, METHOD_FIXED, METHOD_STATIC, encode_grid
from cod_lite.entropy.prior import IndexPrior
from cod_lite.errors import BitstreamError
from cod_lite.models.config import ModelConfig
from cod_lite.models.network import CodLiteNet
from cod_lite.weights import weights_digest

SLOW_SECONDS = 1.0  # counted and reported as slow (a busy machine makes a few)
HANG_SECONDS = 10.0  # a failure


def make_codec() -> Codec:
    config = ModelConfig(name="fuzz", ds=16, codebook_bits=8, hidden_size=32, hidden_size_x=8, num_blocks=1, num_cond_blocks=1, encoder_channels=32)
    net = CodLiteNet(config)
    rng = np.random.default_rng(0)
    grids = [np.clip(np.cumsum(rng.integers(-3, 4, size=(12, 16)), axis=1) + 128, 0, 255) for _ in range(8)]
    return Codec(net, weights_digest(net.state_dict()), prior=IndexPrior.fit(grids, 256))


def seed_streams(codec: Codec) -> list[bytes]:
    rng = np.random.default_rng(1)
    seeds = []
    metadata = ({}, {"icc": bytes(range(40))}, {"exif": b"II*\x00" + bytes(12), "icc": b"p" * 9, "xmp": b"<x/>"})
    for method in (METHOD_FIXED, METHOD_STATIC, METHOD_CONTEXT, METHOD_ADAPTIVE):
        for (height, width), chunks in zip(((192, 256), (17, 33), (1, 1)), metadata):
            grid = np.clip(np.cumsum(rng.integers(-3, 4, size=(-(-height // 16), -(-width // 16))), axis=1) + 128, 0, 255)
            _, payload = encode_grid(grid, 8, codec.prior, (method,))
            levels = rng.integers(-9, 10, size=(*colour.grid_shape(height, width, 32), 3))
            side = {"colour": colour.pack(np.array([[1.1, 0, 0, 3], [0, 0.9, 0, -2], [0, 0, 1, 5]])),
                    "colour_grid": colour.pack_grid(levels, 32, 8)}
            for carried, corrections in ((chunks, {}), (metadata[2], {}), (chunks, side)):
                header = bitstream.StreamHeader("fuzz", codec.identity, width, height, 0, method, payload, carried, **corrections)
                seeds.append(bitstream.serialize(header))
    return seeds


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("append"), st.integers(1, 64), st.integers(0, 255)),
)


def mutate(data: bytes, ops: list[tuple[str, int, int]], fix_crc: bool) -> bytes:
    out = bytearray(data)
    for op, pos, value in ops:
        i = pos % (len(out) + 1)
        if op == "flip" and out:
            out[i % len(out)] ^= 1 << value
        elif op == "set" and out:
            out[i % len(out)] = value
        elif op == "cut":
            del out[i:]
        elif op == "insert":
            out.insert(i, value)
        elif op == "append":
            out += bytes([value]) * pos
    if fix_crc and len(out) > 4:
        out[-4:] = struct.pack("<I", zlib.crc32(bytes(out[:-4])))
    return bytes(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=10000)
    args = parser.parse_args()
    codec = make_codec()
    seeds = seed_streams(codec)
    outcomes: collections.Counter[str] = collections.Counter()
    slowest, slow = [0.0], [0]

    @settings(max_examples=args.examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(seeds), st.lists(mutation, min_size=1, max_size=4), st.booleans())
    def fuzz(seed: bytes, ops: list[tuple[str, int, int]], fix_crc: bool) -> None:
        data = mutate(seed, ops, fix_crc)
        start = time.perf_counter()
        try:
            about = cod_lite.inspect(data)
            assert about.bytes == len(data) and set(about.metadata) <= set(bitstream.CHUNK_TAGS)
            grid, height, width = codec.decode_indices(data)
            assert grid.min() >= 0 and grid.max() < 256, "index out of range"
            header = bitstream.parse(data)
            colour.correct(np.zeros((height, width, 3), np.uint8), header.colour, header.colour_grid)
            outcomes["decoded"] += 1
        except BitstreamError as e:
            outcomes["BitstreamError: " + re.sub(r"[0-9a-f]{6,}|\d+|'[^']*'", "_", str(e))[:70]] += 1
        elapsed = time.perf_counter() - start
        slowest[0] = max(slowest[0], elapsed)
        if elapsed > SLOW_SECONDS:
            slow[0] += 1
        assert elapsed < HANG_SECONDS, f"input took {elapsed:.2f} s"

    tracemalloc.start()
    start = time.perf_counter()
    fuzz()
    total = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"{sum(outcomes.values())} mutated streams ({len(seeds)} seeds) in {total:.1f} s; slowest {slowest[0] * 1e3:.1f} ms, "
          f"{slow[0]} over {SLOW_SECONDS:.0f} s; "
          f"peak traced memory {peak / 2**20:.1f} MiB; peak RSS {rss:.0f} MiB")
    for outcome, count in outcomes.most_common():
        print(f"  {count:6d}  {outcome}")
    print("no crash, hang or unexpected exception")


if __name__ == "__main__":
    main()
