import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest
import torch

from model.data import (
    ChecksumMismatchError,
    WordListError,
    build_windows,
    download_word_list,
    read_words,
    split_words,
)
from model.vocab import Vocab
from tests.conftest import generate_words


def test_read_words_strips_and_drops_blanks_and_repeats(tmp_path: Path):
    path = tmp_path / "w.txt"
    path.write_text(" anna\n\nbob \nanna\n  \nzoë\n", encoding="utf-8")
    assert read_words(path) == ["anna", "bob", "zoë"]


def test_empty_word_list_is_rejected(tmp_path: Path):
    path = tmp_path / "w.txt"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(WordListError, match="no words"):
        read_words(path)


def test_split_is_word_level_disjoint_deterministic_80_10_10():
    words = generate_words(1000)
    splits = split_words(words, seed=7)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (800, 100, 100)
    assert sorted(splits.train + splits.val + splits.test) == sorted(words)
    assert not set(splits.train) & set(splits.val)
    assert not set(splits.train) & set(splits.test)
    assert not set(splits.val) & set(splits.test)
    assert split_words(words, seed=7) == splits
    assert split_words(words, seed=8).train != splits.train


def test_split_fractions_are_validated():
    with pytest.raises(ValueError, match="fractions"):
        split_words(["a", "b"], seed=0, fractions=(0.5, 0.6, 0.1))


def test_windows_are_padded_and_end_with_the_end_token():
    vocab = Vocab.from_words(["emma"])  # . a e m
    x, y = build_windows(["emma"], vocab, block_size=3)
    assert x.tolist() == [[0, 0, 0], [0, 0, 2], [0, 2, 3], [2, 3, 3], [3, 3, 1]]
    assert y.tolist() == [2, 3, 3, 1, 0]
    assert x.dtype == y.dtype == torch.long


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def local_server(tmp_path: Path):
    """Serve tmp_path/served over HTTP on 127.0.0.1 (a free port)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_sha256_and_caches(local_server, tmp_path: Path):
    served, base = local_server
    body = "\n".join(generate_words(50)).encode()
    (served / "names.txt").write_bytes(body)
    cache = tmp_path / "cache"
    path = download_word_list(f"{base}/names.txt", hashlib.sha256(body).hexdigest(), cache)
    assert path.read_bytes() == body
    (served / "names.txt").unlink()  # a second call must use the cache, not the network
    assert download_word_list(f"{base}/names.txt", hashlib.sha256(body).hexdigest(), cache) == path


def test_download_with_wrong_sha256_is_an_error_and_keeps_nothing(local_server, tmp_path: Path):
    served, base = local_server
    (served / "names.txt").write_bytes(b"tampered\n")
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        download_word_list(f"{base}/names.txt", "0" * 64, cache)
    assert list(cache.iterdir()) == []
