"""Exact and near-duplicate removal, and decontamination against evaluation prompts.

Pure and incremental (no Django, no torch): feed texts one at a time as they stream in; each filter
remembers what it has seen.

- `ExactDuplicateFilter`: sha256 of `normalize(text)` (`content_hash`) in a set: case, Unicode form and
  whitespace differences are duplicates.
- `NearDuplicateFilter`: MinHash over word 5-gram shingles of `normalize(text)`, 128 permutations, and an
  LSH index at Jaccard 0.8 (datasketch `MinHash` / `MinHashLSH`). datatrove's MinHash dedup uses the same
  5-gram shingles and LSH bands aimed at about 0.8 similarity (14 bands x 8 hashes); 0.8 is also
  SlimPajama's threshold. LSH candidates are confirmed by the estimated Jaccard, so a reported duplicate is
  at or above the threshold by the sketch's estimate (standard error ~0.035 at J = 0.8 with 128 perms).
- `Decontaminator`: word 13-gram overlap with evaluation prompts, as in GPT-3 (Brown et al. 2020, appendix
  C; Llama 2 and later reports use the same kind of n-gram overlap); a prompt shorter than 13 words must
  occur whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
from datasketch import MinHash, MinHashLSH

from generation.pipeline.text import content_hash, normalize

SHINGLE_WORDS = 5
"""Word n-gram size of the shingles (datatrove's MinhashConfig.n_grams)."""

NUM_PERM = 128
"""MinHash permutations: Jaccard estimates with standard error sqrt(J(1-J)/128) <= 0.044."""

JACCARD_THRESHOLD = 0.8
"""Texts whose shingle sets have Jaccard similarity >= 0.8 are near-duplicates."""

MINHASH_SEED = 1
MINHASH_SCHEME = "affine32"
"""Fixed seed and permutation scheme (datasketch 2.0's default), so signatures computed in different
processes and stored (e.g. on Segment rows) can be compared with each other."""

DECONTAMINATION_NGRAM = 13
"""Word n-gram size for decontamination (GPT-3's 13-grams)."""

_WORD = re.compile(r"\w+")


def shingles(text: str, n: int = SHINGLE_WORDS) -> set[str]:
    """Word n-grams of `normalize(text)`; a text of fewer than n words is one shingle (none when empty)."""
    words = normalize(text).split()
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


_PERMUTATIONS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def minhash(text: str, *, num_perm: int = NUM_PERM, n: int = SHINGLE_WORDS) -> MinHash | None:
    """The MinHash signature of `text`'s shingles, or None for a text without words."""
    grams = shingles(text, n)
    if not grams:
        return None
    if num_perm not in _PERMUTATIONS:  # generating permutations is the slow part of MinHash(); share them
        _PERMUTATIONS[num_perm] = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME).permutations
    m = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=MINHASH_SCHEME, permutations=_PERMUTATIONS[num_perm])
    m.update_batch([g.encode("utf-8") for g in grams])
    return m


class ExactDuplicateFilter:
    """Exact duplicates after `normalize`: `seen(text)` returns the content hash when it was seen before."""

    name = "exact_duplicate"

    def __init__(self, hashes: Iterable[str] = ()) -> None:
        self._hashes: set[str] = set(hashes)  # e.g. the hashes already stored for a corpus

    def __len__(self) -> int:
        return len(self._hashes)

    def seen(self, text: str) -> str | None:
        """The hash of the earlier identical text, or None (and the text is remembered)."""
        h = content_hash(text)
        if h in self._hashes:
            return h
        self._hashes.add(h)
        return None

    def check(self, text: str) -> str | None:
        """Filter interface: "exact_duplicate" or None. Remembers the text like `seen`."""
        return "exact_duplicate" if self.seen(text) is not None else None


class NearDuplicateFilter:
    """Streaming near-duplicate detection with MinHash LSH.

    `seen(text, key)` returns the key of an earlier near-duplicate (Jaccard >= threshold), or None and
    indexes the text under `key` (default: its content hash). Memory: the LSH index plus, with `verify`,
    one 512-byte signature per indexed text.
    """

    name = "near_duplicate"

    def __init__(
        self,
        *,
        threshold: float = JACCARD_THRESHOLD,
        num_perm: int = NUM_PERM,
        ngram: int = SHINGLE_WORDS,
        verify: bool = True,
    ) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.ngram = ngram
        self.verify = verify
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._order: dict[str, int] = {}  # key -> insertion rank, to report the earliest candidate
        self._signatures: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._order)

    def signature(self, text: str) -> MinHash | None:
        return minhash(text, num_perm=self.num_perm, n=self.ngram)

    def query(self, text: str | MinHash) -> str | None:
        """The key of an indexed near-duplicate of `text` (the most similar, then the earliest), or None."""
        m = self.signature(text) if isinstance(text, str) else text
        if m is None or not self._order:
            return None
        candidates = self._lsh.query(m)
        if not self.verify:
            return min(candidates, key=self._order.__getitem__, default=None)
        best, best_sim = None, -1.0
        for key in sorted(candidates, key=self._order.__getitem__):
            sim = float(np.mean(self._signatures[key] == m.hashvalues))
            if sim >= self.threshold and sim > best_sim:
                best, best_sim = key, sim
        return best

    def add(self, key: str, text: str | MinHash) -> None:
        """Index `text` (or its signature) under `key` without looking for duplicates."""
        if key in self._order:
            raise ValueError(f"key {key!r} is already indexed")
        m = self.signature(text) if isinstance(text, str) else text
        if m is None:
            return
        self._lsh.insert(key, m)
        self._order[key] = len(self._order)
        if self.verify:
            self._signatures[key] = m.hashvalues.copy()

    def seen(self, text: str, key: str | None = None) -> str | None:
        """The key of an earlier near-duplicate, or None after indexing `text` under `key`.

        A text without words is never a duplicate and is not indexed.
        """
        m = self.signature(text)
        if m is None:
            return None
        earlier = self.query(m)
        if earlier is not None:
            return earlier
        self.add(key if key is not None else content_hash(text), m)
        return None

    def check(self, text: str) -> str | None:
        """Filter interface: "near_duplicate" or None. Indexes the text like `seen`."""
        return "near_duplicate" if self.seen(text) is not None else None


class Decontaminator:
    """Drops texts that share a word n-gram (13 by default) with an evaluation prompt.

    Words are the `\\w+` runs of `normalize(text)` (case-folded, punctuation ignored). A prompt of fewer
    than `n` words counts as one n-gram of its own length: it must appear whole, in order. Prompts of fewer
    than `min_words` words are ignored (one- or two-word prompts would match ordinary prose).
    """

    name = "decontamination"

    def __init__(self, prompts: Iterable[str], n: int = DECONTAMINATION_NGRAM, *, min_words: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be >= 1")
        self.n = n
        self.prompts = list(prompts)
        self._grams: dict[int, dict[tuple[str, ...], int]] = {}  # length -> n-gram -> prompt index
        for i, prompt in enumerate(self.prompts):
            words = _WORD.findall(normalize(prompt))
            if len(words) < max(min_words, 1):
                continue
            size = min(n, len(words))
            table = self._grams.setdefault(size, {})
            for j in range(len(words) - size + 1):
                table.setdefault(tuple(words[j : j + size]), i)

    def match(self, text: str) -> int | None:
        """Index (in `prompts`) of a prompt that overlaps `text`, or None."""
        words = _WORD.findall(normalize(text))
        for size, table in self._grams.items():
            for j in range(len(words) - size + 1):
                hit = table.get(tuple(words[j : j + size]))
                if hit is not None:
                    return hit
        return None

    def check(self, text: str) -> str | None:
        """Filter interface: "eval_overlap" or None."""
        return "eval_overlap" if self.match(text) is not None else None
