"""Every kind of key Distill reads or writes, one module each: `api` (the key a client sends to an endpoint, and the
keys `distill serve` accepts), `signing` (the Ed25519 keys that sign lineage and export records, `distill keys`) and
`watermark` (a watermark's secret and scheme, `distill watermark keygen`). None of them is ever logged."""
