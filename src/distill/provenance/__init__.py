"""Provenance: the licence/terms policy gate, signed lineage records, and the keys that sign them."""
