"""The query router: N Chroma shards behind Chroma's own HTTP API v2."""
