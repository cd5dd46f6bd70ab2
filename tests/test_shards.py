"""The token shard format (pipeline/shards.py): round trip, loud failures, atomic writes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline import shards, storage
from pipeline.shards import ShardFormatError, TokenShard, TokenStream, write_shard

EOT = 50256


def _docs(lengths: list[int], vocab: int = 50257, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random documents (ids below EOT) each followed by EOT, and their offsets."""
    rng = np.random.default_rng(seed)
    parts = [np.append(rng.integers(0, min(vocab, EOT), n), EOT) for n in lengths]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    return np.concatenate(parts), offsets


def _write(path, lengths=(5, 0, 17, 3), vocab=50257, seed=0):
    tokens, offsets = _docs(list(lengths), vocab, seed)
    info = write_shard(path, tokens, offsets, eot_id=EOT, vocab_size=vocab,
                       metadata={"source": "web", "doc_ids": [f"d{i}" for i in range(len(lengths))]})
    return tokens, offsets, info


def test_round_trip_tokens_boundaries_metadata(tmp_path):
    path = tmp_path / "web" / "s0.bin"
    tokens, offsets, info = _write(path)
    shard = TokenShard(path)
    assert shard.dtype == np.uint16 and info.dtype == "uint16"
    assert (shard.n_tokens, shard.n_docs) == (len(tokens), 4) == (info.n_tokens, info.n_docs)
    assert isinstance(shard.tokens, np.ndarray) and not shard.tokens.flags.owndata  # a view on the mmap
    np.testing.assert_array_equal(shard.tokens, tokens)
    np.testing.assert_array_equal(shard.doc_offsets, offsets)
    np.testing.assert_array_equal(shard.doc_lengths(), [6, 1, 18, 4])
    np.testing.assert_array_equal(shard.document(2), tokens[7:24])
    assert shard.document(1).size == 0 and shard.document(1, with_eot=True).tolist() == [EOT]
    meta = shard.metadata
    assert meta["source"] == "web" and meta["doc_ids"] == ["d0", "d1", "d2", "d3"]
    assert meta["sha256"] == info.sha256 == storage.sha256_of(str(path))
    assert (meta["n_tokens"], meta["eot_id"], meta["version"]) == (len(tokens), EOT, shards.VERSION)
    shard.verify()
    with pytest.raises(IndexError, match="holds 4"):
        shard.document(4)


def test_pickles_as_a_path_not_as_the_tokens(tmp_path):
    import pickle

    tokens, _, _ = _write(tmp_path / "s.bin", (5000, 3000))
    blob = pickle.dumps(TokenShard(tmp_path / "s.bin"))
    assert len(blob) < 500  # the 16 KB of tokens are not copied into worker processes
    np.testing.assert_array_equal(pickle.loads(blob).tokens, tokens)


def test_dtype_follows_vocabulary_size(tmp_path):
    assert shards.token_dtype(50257) == np.uint16 and shards.token_dtype(65536) == np.uint16
    assert shards.token_dtype(65537) == np.uint32
    tokens = np.array([70000, 1, 100255, 99999, 100255], dtype=np.int64)  # ids above uint16
    info = write_shard(tmp_path / "big.bin", tokens, [0, 3, 5], eot_id=100255, vocab_size=100277, metadata={})
    shard = TokenShard(tmp_path / "big.bin")
    assert info.dtype == "uint32" and shard.dtype == np.uint32
    assert shard.document(0).tolist() == [70000, 1] and shard.document(1).tolist() == [99999]


def test_writer_rejects_bad_input(tmp_path):
    tokens, offsets = _docs([4, 4])
    tokens[4] = 7  # first document no longer ends with EOT
    with pytest.raises(ValueError, match="end-of-text"):
        write_shard(tmp_path / "a.bin", tokens, offsets, eot_id=EOT, vocab_size=50257, metadata={})
    tokens, offsets = _docs([4])
    with pytest.raises(ValueError, match="doc_offsets"):
        write_shard(tmp_path / "a.bin", tokens, offsets[:-1], eot_id=EOT, vocab_size=50257, metadata={})
    with pytest.raises(ValueError, match="vocab_size"):
        write_shard(tmp_path / "a.bin", np.array([300, 5]), [0, 2], eot_id=5, vocab_size=260, metadata={})
    assert not list(tmp_path.iterdir())


def test_wrong_magic_says_what_it_is(tmp_path):
    path = tmp_path / "s.bin"
    _write(path)
    data = bytearray(path.read_bytes())
    data[:8] = b"MMIDIDX\x00"
    path.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match="bad magic .*not a gristmill token shard"):
        TokenShard(path)


def test_wrong_version_names_both_versions(tmp_path):
    path = tmp_path / "s.bin"
    _write(path)
    data = bytearray(path.read_bytes())
    data[8:12] = struct.pack("<I", 7)
    path.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match="format version 7, this reader knows version 1.*re-tokenize"):
        TokenShard(path)


def test_truncated_file_and_trailing_bytes(tmp_path):
    path = tmp_path / "s.bin"
    _write(path)
    full = path.read_bytes()
    path.write_bytes(full[:-5])
    with pytest.raises(ShardFormatError, match="truncated: .*implies .*re-run the tokenize step"):
        TokenShard(path)
    path.write_bytes(full[:20])
    with pytest.raises(ShardFormatError, match="truncated: 20 bytes, shorter than the 64-byte header"):
        TokenShard(path)
    path.write_bytes(full + b"\0" * 8)
    with pytest.raises(ShardFormatError, match="size mismatch"):
        TokenShard(path)


def test_missing_sidecar_and_changed_bytes_are_caught(tmp_path):
    path = tmp_path / "s.bin"
    _write(path)
    data = bytearray(path.read_bytes())
    data[shards.HEADER_SIZE] ^= 1  # flip one bit of the first token
    path.write_bytes(bytes(data))
    with pytest.raises(ShardFormatError, match="differs from its sidecar"):
        TokenShard(path).verify()
    Path(shards.sidecar_path(path)).unlink()
    with pytest.raises(ShardFormatError, match="sidecar missing.*never completed"):
        _ = TokenShard(path).metadata


def test_killed_writer_leaves_no_shard_and_keeps_the_old_one(tmp_path):
    path = tmp_path / "s.bin"
    tokens, _, info = _write(path)

    def dying_chunks():
        yield b"GRISTTOK" + b"\0" * 100
        raise KeyboardInterrupt("worker killed")

    with pytest.raises(KeyboardInterrupt):
        storage.write_bytes(str(path), dying_chunks())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.bin", "s.json"]  # no .tmp left behind
    np.testing.assert_array_equal(TokenShard(path).tokens, tokens)  # the complete old shard survives
    assert storage.sha256_of(str(path)) == info.sha256
    with pytest.raises(KeyboardInterrupt):
        storage.write_bytes(str(tmp_path / "new.bin"), dying_chunks())
    assert not (tmp_path / "new.bin").exists()


def test_same_input_same_bytes(tmp_path):
    _write(tmp_path / "a.bin", seed=3)
    _write(tmp_path / "b.bin", seed=3)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    side_a = json.loads((tmp_path / "a.json").read_text())
    assert side_a == json.loads((tmp_path / "b.json").read_text())


def test_stream_reads_across_shard_boundaries(tmp_path):
    t0, _, _ = _write(tmp_path / "0.bin", (3, 4), seed=1)
    t1, _, _ = _write(tmp_path / "1.bin", (2,), seed=2)
    t2, _, _ = _write(tmp_path / "2.bin", (6, 1), seed=3)
    stream = TokenStream([tmp_path / "0.bin", tmp_path / "1.bin", tmp_path / "2.bin"])
    whole = np.concatenate([t0, t1, t2])
    assert len(stream) == len(whole)
    for start, count in [(0, len(whole)), (7, 5), (8, 3), (5, 12), (len(whole) - 1, 1)]:
        np.testing.assert_array_equal(stream.read(start, count), whole[start : start + count])
    with pytest.raises(IndexError, match="outside a stream"):
        stream.read(len(whole) - 2, 3)
