"""Exact and near-duplicate removal, and decontamination against evaluation prompts.

Pure (no Django, no torch): texts are fed as they stream in, one at a time or a batch at a time.

- Exact duplicates: sha256 of `normalize(text)` (`content_hash`): case, Unicode form and whitespace
  differences are duplicates.
- Near duplicates: MinHash over word 5-gram shingles of `normalize(text)`, 128 permutations (datasketch
  `MinHash`), banded for Jaccard 0.8 with datasketch's optimal banding (9 bands x 13 rows), each band hashed
  to one 64-bit key. `NearDuplicateFilter` keeps the index in memory; `dedup_batch` decides a batch of
  passages against keys and signatures a store (PostgreSQL, in ingestion) returns for the batch, so memory
  does not grow with the corpus. datatrove's MinHash dedup uses the same 5-gram shingles and LSH bands aimed
  at about 0.8 similarity (its default is 14 bands x 8 hashes); 0.8 is also SlimPajama's threshold. LSH
  candidates are confirmed by the estimated Jaccard, so a reported duplicate is at or above the threshold by the
  sketch's estimate (standard error ~0.035 at J = 0.8 with 128 perms).
- `Decontaminator`: word 13-gram overlap with evaluation prompts, as in GPT-3 (Brown et al. 2020, appendix
  C; Llama 2 and later reports use the same kind of n-gram overlap); a prompt shorter than 13 words must
  occur whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from datasketch import MinHash, MinHashLSH

from generation.corpus.text import content_hash, normalize

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


@dataclass(frozen=True)
class LSHParams:
    """Banding of a MinHash signature: `bands` bands of `rows` hash values each (bands * rows <= num_perm)."""

    threshold: float
    num_perm: int
    bands: int
    rows: int


@lru_cache(maxsize=8)
def lsh_params(threshold: float = JACCARD_THRESHOLD, num_perm: int = NUM_PERM) -> LSHParams:
    """datasketch's optimal banding for `threshold` (equal weight on false positives and negatives): 9 x 13
    for 0.8 at 128 permutations, the same bands datatrove's benchmark uses."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return LSHParams(threshold=threshold, num_perm=num_perm, bands=lsh.b, rows=lsh.r)


def signature(m: MinHash) -> np.ndarray:
    """A signature as little-endian uint32 (the affine32 scheme's values fit): 512 bytes at 128 permutations."""
    return m.hashvalues.astype("<u4")


def band_keys(sig: np.ndarray, params: LSHParams) -> list[int]:
    """One signed 64-bit key per band (blake2b of the band index and its hash values), so a band bucket is a
    BIGINT in PostgreSQL or an int in a dict instead of datasketch's bytes-keyed sets."""
    raw = np.ascontiguousarray(sig[: params.bands * params.rows], dtype="<u4").reshape(params.bands, params.rows)
    return [
        int.from_bytes(hashlib.blake2b(bytes([i]) + raw[i].tobytes(), digest_size=8).digest(), "little", signed=True)
        for i in range(params.bands)
    ]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal hash values."""
    return float(np.count_nonzero(a == b)) / len(a)


class NearDuplicateFilter:
    """Streaming near-duplicate detection with MinHash LSH, in memory.

    `seen(text, key)` returns the key of an earlier near-duplicate (Jaccard >= threshold), or None and
    indexes the text under `key` (default: its content hash). Memory per indexed text: one 512-byte
    signature (with `verify`) and `bands` int keys. For corpora of any size ingestion keeps the same index in
    PostgreSQL instead (`dedup_batch` decides, `generation.services.corpus` stores).
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
        self.params = lsh_params(threshold, num_perm)
        self.threshold = threshold
        self.ngram = ngram
        self.verify = verify
        self._buckets: dict[int, list[Hashable]] = {}
        self._order: dict[Hashable, int] = {}  # key -> insertion rank, to report the earliest candidate
        self._signatures: dict[Hashable, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._order)

    def signature(self, text: str) -> np.ndarray | None:
        m = minhash(text, num_perm=self.params.num_perm, n=self.ngram)
        return None if m is None else signature(m)

    def query(self, text: str | np.ndarray) -> Hashable | None:
        """The key of an indexed near-duplicate of `text` (the most similar, then the earliest), or None."""
        sig = self.signature(text) if isinstance(text, str) else text
        if sig is None or not self._order:
            return None
        candidates = {key for bk in band_keys(sig, self.params) for key in self._buckets.get(bk, ())}
        ordered = sorted(candidates, key=self._order.__getitem__)
        if not self.verify:
            return ordered[0] if ordered else None
        return best_match(sig, ((key, self._signatures[key]) for key in ordered), self.threshold)

    def add(self, key: Hashable, text: str | np.ndarray) -> None:
        """Index `text` (or its signature) under `key` without looking for duplicates."""
        if key in self._order:
            raise ValueError(f"key {key!r} is already indexed")
        sig = self.signature(text) if isinstance(text, str) else text
        if sig is None:
            return
        for bk in band_keys(sig, self.params):
            self._buckets.setdefault(bk, []).append(key)
        self._order[key] = len(self._order)
        if self.verify:
            self._signatures[key] = sig

    def seen(self, text: str, key: Hashable | None = None) -> Hashable | None:
        """The key of an earlier near-duplicate, or None after indexing `text` under `key`.

        A text without words is never a duplicate and is not indexed.
        """
        sig = self.signature(text)
        if sig is None:
            return None
        earlier = self.query(sig)
        if earlier is not None:
            return earlier
        self.add(key if key is not None else content_hash(text), sig)
        return None

    def check(self, text: str) -> str | None:
        """Filter interface: "near_duplicate" or None. Indexes the text like `seen`."""
        return "near_duplicate" if self.seen(text) is not None else None


def best_match(sig: np.ndarray, candidates: Iterable[tuple[Hashable, np.ndarray]], threshold: float) -> Hashable | None:
    """The candidate key whose signature is most similar to `sig` at or above `threshold` (first on ties)."""
    best, best_sim = None, -1.0
    for key, other in candidates:
        sim = similarity(sig, other)
        if sim >= threshold and sim > best_sim:
            best, best_sim = key, sim
    return best


@dataclass
class Pending:
    """A passage waiting for its dedup decision: its content hash and MinHash signature (None: no words)."""

    content_hash: str
    signature: np.ndarray | None
    band_keys: list[int] = field(default_factory=list)


@dataclass
class Known:
    """What the store already holds that a batch could duplicate: content hashes, band key -> ids, and the
    signatures of those ids (fetched for the batch's band keys only, so memory is bounded by the batch)."""

    hashes: set[str] = field(default_factory=set)
    buckets: dict[int, list[int]] = field(default_factory=dict)
    signatures: dict[int, np.ndarray] = field(default_factory=dict)


def pending(text: str, params: LSHParams, ngram: int = SHINGLE_WORDS, *, sign: bool = True) -> Pending:
    """A passage's `Pending`: its content hash, and with `sign` its MinHash signature and band keys."""
    item = Pending(content_hash(text), None)
    if sign:
        sign_pending(item, text, params, ngram)
    return item


def sign_pending(item: Pending, text: str, params: LSHParams, ngram: int = SHINGLE_WORDS) -> None:
    m = minhash(text, num_perm=params.num_perm, n=ngram)
    if m is not None:
        item.signature = signature(m)
        item.band_keys = band_keys(item.signature, params)


def sign_new(items: list[Pending], texts: list[str], known_hashes: set[str], params: LSHParams) -> int:
    """Sign the items that are not exact duplicates of `known_hashes` or of an earlier item (MinHash is the
    costly step, and web text is full of copies); returns how many were signed. `dedup_batch` calls the rest
    exact duplicates before it looks at signatures."""
    seen = set(known_hashes)
    signed = 0
    for item, text in zip(items, texts, strict=True):
        if item.content_hash not in seen:
            seen.add(item.content_hash)
            sign_pending(item, text, params)
            signed += 1
    return signed


def dedup_batch(
    items: list[Pending],
    known: Known,
    params: LSHParams,
    check: Callable[[int], str | None] | None = None,
) -> list[tuple[str | None, Hashable | None]]:
    """Decide a batch in order: ("exact_duplicate", hash), ("near_duplicate", earlier id or ("batch", i)),
    (reason, None) when `check(i)` drops it, or (None, None) to keep. An item is compared with what is `known`
    and with the items of this batch kept before it; dropped items are not remembered."""
    kept_hashes: set[str] = set()
    local = NearDuplicateFilter(threshold=params.threshold, num_perm=params.num_perm)
    out: list[tuple[str | None, Hashable | None]] = []
    for i, item in enumerate(items):
        if item.content_hash in known.hashes or item.content_hash in kept_hashes:
            out.append(("exact_duplicate", item.content_hash))
            continue
        if item.signature is not None:
            ids = sorted({sid for bk in item.band_keys for sid in known.buckets.get(bk, ())})
            earlier = best_match(
                item.signature, ((s, known.signatures[s]) for s in ids if s in known.signatures), params.threshold
            )
            if earlier is None:
                earlier = local.query(item.signature)
            if earlier is not None:
                out.append(("near_duplicate", earlier))
                continue
        reason = check(i) if check else None
        if reason:
            out.append((reason, None))
            continue
        kept_hashes.add(item.content_hash)
        if item.signature is not None:
            local.add(("batch", i), item.signature)
        out.append((None, None))
    return out


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
