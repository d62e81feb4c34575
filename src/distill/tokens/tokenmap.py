"""Token strings (and bytes) returned by an API, mapped back to the teacher tokenizer's ids.

APIs return log-probabilities as token *strings*, sometimes with the token's raw UTF-8 `bytes`. To use them as a
sparse distillation signal we need the teacher's token ids. The rule (also in docs/blackbox.md):

1. Every vocabulary id is decoded to its exact bytes (`vocab_bytes`), giving a map bytes -> ids.
2. A returned token is looked up by its `bytes` when the API sent them, else by the UTF-8 encoding of its string.
3. One id with those bytes -> mapped. Several ids (e.g. a special token spelled like plain text, or duplicate
   merges) -> the id the tokenizer itself produces when encoding those bytes alone, counted as *ambiguous*
   (the lowest candidate id if encoding gives no single candidate).
4. No id with those bytes -> the string is tried as a raw vocabulary entry (some servers return "Ġword");
   failing that the token is *unmapped* (counted) and gets id None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache


@lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Inverse of GPT-2's byte-to-unicode table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def _is_byte_level(tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend is not None and "ByteLevel" in repr(getattr(backend, "decoder", ""))


def vocab_bytes(tokenizer) -> list[bytes]:
    """The exact bytes each vocabulary id stands for (index = id).

    Byte-level BPE pieces are converted through the GPT-2 byte table, SentencePiece pieces through `▁` and
    `<0xNN>`; special tokens and anything else fall back to the UTF-8 of `tokenizer.decode([id])`.
    """
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    table = _unicode_to_byte() if _is_byte_level(tokenizer) else None
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        b: bytes | None = None
        if piece is not None and i not in special:
            if table is not None and all(ch in table for ch in piece):
                b = bytes(table[ch] for ch in piece)
            elif table is None and len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                try:
                    b = bytes([int(piece[3:5], 16)])
                except ValueError:
                    b = None
            elif table is None:
                b = piece.replace("▁", " ").encode("utf-8")
        if b is None:
            b = tokenizer.decode([i]).encode("utf-8") if piece is None or i not in special else piece.encode()
        out.append(b)
    return out


@dataclass
class MapStats:
    """How many returned tokens mapped uniquely, ambiguously, or not at all."""

    mapped: int = 0
    ambiguous: int = 0
    unmapped: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"mapped": self.mapped, "ambiguous": self.ambiguous, "unmapped": self.unmapped}


@dataclass
class TokenMapper:
    """Maps API token strings/bytes to ids of one tokenizer, counting what happened in `stats`."""

    tokenizer: object
    stats: MapStats = field(default_factory=MapStats)

    def __post_init__(self) -> None:
        self._by_bytes: dict[bytes, list[int]] = {}
        self.vocab_bytes = vocab_bytes(self.tokenizer)  # exact bytes of every id
        for i, b in enumerate(self.vocab_bytes):
            self._by_bytes.setdefault(b, []).append(i)
        self._vocab = self.tokenizer.get_vocab()
        self._cache: dict[tuple[bytes, str], tuple[int | None, str]] = {}

    def resolve(self, token: str, raw: list[int] | bytes | None = None) -> tuple[int | None, str]:
        """(id or None, outcome) for one token; outcome is "mapped", "ambiguous" or "unmapped". No counting."""
        key_bytes = bytes(raw) if raw is not None else token.encode("utf-8", errors="surrogatepass")
        key = (key_bytes, token)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        ids = self._by_bytes.get(key_bytes, [])
        if len(ids) == 1:
            result: tuple[int | None, str] = (ids[0], "mapped")
        elif ids:
            enc = self.tokenizer.encode(key_bytes.decode("utf-8", errors="replace"), add_special_tokens=False)
            pick = enc[0] if len(enc) == 1 and enc[0] in ids else min(ids)
            result = (pick, "ambiguous")
        elif token in self._vocab:
            result = (int(self._vocab[token]), "mapped")
        else:
            result = (None, "unmapped")
        self._cache[key] = result
        return result

    def map(self, token: str, raw: list[int] | bytes | None = None) -> int | None:
        """The id for one returned token (None when unmapped), counted in `stats`."""
        tid, outcome = self.resolve(token, raw)
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        return tid
