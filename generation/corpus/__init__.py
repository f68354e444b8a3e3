"""Corpus preparation: line cleaning, quality filters, exact and near-duplicate removal, decontamination.

Pure modules (no Django, no torch): `filters` turns a web document into clean self-contained passages
(C4/Gopher-style heuristics, then `generation.corpus.text.split_passages`); `dedup` drops exact and
MinHash near-duplicates and passages that overlap evaluation prompts.
"""
