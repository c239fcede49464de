"""Data safety primitives shared by repair, resharding, backup and restore.

`records` (a page of records), `chroma_http` (typed calls to a Chroma server or router),
`digest` (replica digests by id bucket) and `mover` (stream records from a source to a
sink). Pure Python and httpx: no router code, so routers, Jobs and the CLI all use them.
"""
