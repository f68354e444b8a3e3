"""Model I/O. Heavy libraries (torch, transformers, vLLM) are imported lazily inside functions, so the web
process and pure-logic tests never pay for them."""
